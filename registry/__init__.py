"""Declarative data shipped with mmalign: dataset cards, recipes and reference results (TOML).

No code lives here; :mod:`mmalign.registry` reads and validates these files.
"""
