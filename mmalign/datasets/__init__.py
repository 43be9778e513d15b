"""Readers that turn benchmark files into AlignmentData."""
