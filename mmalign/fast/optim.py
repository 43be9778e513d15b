"""The fused Adam/AMSGrad update.

``torch.optim.Adam(fused=True)`` updates every parameter in one pass over memory. On a 2-core Zen 4
CPU it takes ~7 ms per CADA-VAE step (7.8 M parameters, AMSGrad) against ~37 ms for the default
``foreach`` path, which makes a pass per arithmetic operation; ``benchmarks/SPEED.md`` has the
numbers. The arithmetic is the same as the eager optimiser's up to floating-point rounding
(``tests/test_fast_train.py`` checks a few steps against it).
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


def make_fused_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig,
                         capturable: bool = False) -> torch.optim.Adam:
    """Adam with the config's hyper-parameters, fused where the device supports it (else ``foreach``);
    ``capturable`` for a step captured as a CUDA graph.

    Same parameter order and state layout as :func:`mmalign.training.make_optimizer`, so state
    dicts move freely between the two.
    """
    params = list(params)
    first = params[0]
    kw = {"fused": True} if fused_supported(first.device, first.dtype) else {"foreach": True}
    return torch.optim.Adam(
        params, lr=config.lr, betas=config.betas, eps=config.eps,
        amsgrad=config.amsgrad, weight_decay=config.weight_decay, capturable=capturable, **kw,
    )


class FusedScope:
    """Run a caller's plain ``torch.optim.Adam`` fused, in place, and put it back as it was.

    :meth:`enter` switches every param group to ``fused=True`` (and moves the ``step`` counters to
    the parameters' device, where the fused kernel wants them); :meth:`exit` restores the flags and
    the counters' devices. No state is copied, so the caller's optimiser holds the trained state
    throughout; callbacks that save it should run between :meth:`exit` and :meth:`enter` so that
    the saved state looks like the eager optimiser's. A no-op for an already fused optimiser, any
    other optimiser, or a device/dtype without the fused kernel.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.active = (
            type(optimizer) is torch.optim.Adam and bool(params)
            and not any(g.get("fused") or g.get("differentiable") or g.get("capturable") for g in optimizer.param_groups)
            and len({(p.device, p.dtype) for p in params}) == 1
            and fused_supported(params[0].device, params[0].dtype)
        )
        self.flags = [(g.get("fused"), g.get("foreach")) for g in optimizer.param_groups]
        self.entered = False

    def _move_steps(self, to_param_device: bool) -> None:
        for p, state in self.optimizer.state.items():
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                device = p.device if to_param_device else torch.device("cpu")
                if step.device != device:
                    state["step"] = step.to(device=device, dtype=torch.float32)

    def enter(self) -> None:
        if self.active and not self.entered:
            for g in self.optimizer.param_groups:
                g["fused"], g["foreach"] = True, False
            self._move_steps(True)
            self.entered = True

    def exit(self) -> None:
        if self.active and self.entered:
            for g, (fused, foreach) in zip(self.optimizer.param_groups, self.flags):
                g["fused"], g["foreach"] = fused, foreach
            self._move_steps(False)
            self.entered = False
