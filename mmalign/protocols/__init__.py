"""Evaluation protocols: GZSL, ZSL and few-shot on aligned latents."""
