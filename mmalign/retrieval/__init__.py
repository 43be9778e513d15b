"""Cross-modal retrieval: metrics, linear baselines and the CUB text benchmark.

``run_cub_text`` (``mmalign benchmark cub-text``) aligns CUB attributes, sentence embeddings and
Wikipedia text on the seen classes and retrieves unseen classes across modalities.
"""

from .baselines import CCA, RidgeMap, baseline_retrieval, select_by_cv
from .cub_text import run_cub_text
from .metrics import chance_metrics, retrieval_metrics, retrieval_ranks, similarity

__all__ = [
    "CCA",
    "RidgeMap",
    "baseline_retrieval",
    "chance_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "run_cub_text",
    "select_by_cv",
    "similarity",
]
