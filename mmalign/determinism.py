"""Deterministic execution.

On the CPU every mmalign computation is deterministic for a given seed: same losses, metrics and
weights. On CUDA a few kernels are not, by default:

* the backward of row gathering (``x[idx]`` -> ``index_put_`` with accumulate / ``index_add_``),
  used for per-class side information and batches drawn by index;
* cuBLAS GEMMs, whose split-K reductions may change order between runs unless
  ``CUBLAS_WORKSPACE_CONFIG`` is set;
* cuDNN autotuning (``torch.backends.cudnn.benchmark``), unused by the MLPs but off here anyway.

`enable_determinism` (``--deterministic`` at the CLI) turns all of these off, at some speed
cost, and makes PyTorch raise if a non-deterministic kernel is still reached.
"""

from __future__ import annotations

import os

import torch

NONDETERMINISTIC_ON_CUDA = (
    "index_put_/index_add_ backward of row gathering (x[idx])",
    "cuBLAS split-K GEMM reductions (needs CUBLAS_WORKSPACE_CONFIG=:4096:8)",
    "cuDNN autotuning (torch.backends.cudnn.benchmark)",
)


def enable_determinism() -> None:
    """Deterministic kernels only (must run before the first CUDA call for cuBLAS to pick it up)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
