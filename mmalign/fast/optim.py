"""The fused Adam/AMSGrad update.

``torch.optim.Adam(fused=True)`` updates every parameter in one pass over memory. On a 2-core Zen 4
CPU it takes ~7 ms per CADA-VAE step (7.8 M parameters, AMSGrad) against ~37 ms for the default
``foreach`` path, which makes a pass per arithmetic operation; ``benchmarks/SPEED.md`` has the
numbers. The arithmetic is the same as the eager optimiser's up to floating-point rounding
(``tests/test_fast_train.py`` checks a few steps against it).
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..config import TrainConfig


def fused_supported(device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` runs on ``device`` for ``dtype`` parameters."""
    try:
        p = torch.nn.Parameter(torch.zeros(2, device=device, dtype=dtype))
        p.grad = torch.zeros_like(p)
        torch.optim.Adam([p], fused=True, amsgrad=True).step()
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return False
    return True


def make_fused_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Adam:
    """Adam with the config's hyper-parameters, fused where the device supports it (else ``foreach``).

    Same parameter order and state layout as :func:`mmalign.training.make_optimizer`, so state
    dicts move freely between the two.
    """
    params = list(params)
    first = params[0]
    kw = {"fused": True} if fused_supported(first.device, first.dtype) else {"foreach": True}
    return torch.optim.Adam(
        params, lr=config.lr, betas=config.betas, eps=config.eps,
        amsgrad=config.amsgrad, weight_decay=config.weight_decay, **kw,
    )


def as_fused(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """A fused copy of a plain ``torch.optim.Adam`` over ``params`` (state and hyper-parameters
    carried over), or ``optimizer`` itself when it is already fused or not an Adam."""
    if not isinstance(optimizer, torch.optim.Adam) or any(g.get("fused") for g in optimizer.param_groups):
        return optimizer
    if len(optimizer.param_groups) != 1 or len(optimizer.param_groups[0]["params"]) != len(params):
        return optimizer
    if not fused_supported(params[0].device, params[0].dtype):
        return optimizer
    group = optimizer.param_groups[0]
    fused = torch.optim.Adam(
        params, lr=group["lr"], betas=group["betas"], eps=group["eps"], amsgrad=group["amsgrad"],
        weight_decay=group["weight_decay"], fused=True,
    )
    state = optimizer.state_dict()
    state["param_groups"][0].update(fused=True, foreach=None)
    fused.load_state_dict(state)
    return fused


def copy_state_back(source: torch.optim.Optimizer, target: torch.optim.Optimizer) -> None:
    """Load ``source``'s state into ``target``, keeping ``target``'s implementation flags."""
    if source is target:
        return
    flags = [{k: g.get(k) for k in ("fused", "foreach", "capturable", "differentiable")} for g in target.param_groups]
    state = source.state_dict()
    for group, keep in zip(state["param_groups"], flags):
        group.update(keep)
    target.load_state_dict(state)
