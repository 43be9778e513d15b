"""The VAE optimiser: Adam (AMSGrad) with the config's hyper-parameters, plain or fused.

``torch.optim.Adam(fused=True)`` updates every parameter in one pass over memory. On a 2-core Zen 4
CPU it takes ~7 ms per CADA-VAE step (7.8 M parameters, AMSGrad) against ~37 ms for the default
``foreach`` path, which makes a pass per arithmetic operation; ``benchmarks/SPEED.md`` has the
numbers. The arithmetic is the same as the eager optimiser's up to floating-point rounding
(``tests/test_training_engines.py`` checks the engines against it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import torch

from ..config import TrainConfig


def fused_supported(device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` runs on ``device`` for ``dtype`` parameters."""
    return _fused_supported(str(torch.device(device)), dtype)


@lru_cache(maxsize=None)
def _fused_supported(device: str, dtype: torch.dtype) -> bool:
    try:
        p = torch.nn.Parameter(torch.zeros(2, device=device, dtype=dtype))
        p.grad = torch.zeros_like(p)
        torch.optim.Adam([p], fused=True, amsgrad=True).step()
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return False
    return True


def make_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig, fused: bool = True,
                   capturable: bool = False) -> torch.optim.Adam:
    """Adam with the config's hyper-parameters: fused where the device supports it (``fused=False``:
    PyTorch's default kernels, the reference engine's optimiser); ``capturable`` for a step captured
    as a CUDA graph. Both forms have the same state layout, so a saved state loads into either."""
    if not fused:
        return torch.optim.Adam(list(params), lr=config.lr, betas=config.betas, eps=config.eps,
                                amsgrad=config.amsgrad, weight_decay=config.weight_decay)
    params = list(params)
    first = params[0]
    kw = {"fused": True} if fused_supported(first.device, first.dtype) else {"foreach": True}
    return torch.optim.Adam(
        params, lr=config.lr, betas=config.betas, eps=config.eps,
        amsgrad=config.amsgrad, weight_decay=config.weight_decay, capturable=capturable, **kw,
    )
