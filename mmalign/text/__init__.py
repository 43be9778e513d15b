"""Text as a modality: transformers encoders with pooling, normalisation and an embedding cache.

Importing this package is cheap: transformers is imported only when texts are really encoded.
"""

from .cache import EmbeddingCache, cache_dir, cache_key
from .encoder import TextEncoder, pool
from .model import ResolvedModel, default_model_dir, model_identity, resolve_model

__all__ = [
    "EmbeddingCache",
    "ResolvedModel",
    "TextEncoder",
    "cache_dir",
    "cache_key",
    "default_model_dir",
    "model_identity",
    "pool",
    "resolve_model",
]
