"""Cross-modal retrieval: metrics, linear baselines and the CUB text benchmark."""

from .baselines import CCA, RidgeMap, baseline_retrieval, select_by_cv
from .metrics import chance_metrics, retrieval_metrics, retrieval_ranks, similarity

__all__ = [
    "CCA",
    "RidgeMap",
    "baseline_retrieval",
    "chance_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "select_by_cv",
    "similarity",
]
