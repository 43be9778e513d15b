"""fp32 ``F.linear`` through oneDNN on the CPU, chosen per shape by timing.

PyTorch's CPU build sends fp32 matrix products to MKL. On AMD CPUs MKL does not take its AVX-512
code path, and oneDNN (also in every CPU build, used by PyTorch for bf16) is 1.2-1.6x faster on
CADA-VAE's shapes (2-core Zen 4, one thread: forward 50x2048->1560 4.2 vs 5.0 ms, ``dX`` 4.4 vs
6.1 ms; ``benchmarks/SPEED.md``). :class:`OneDnnLinear` is a ``TorchFunctionMode`` that routes every
fp32 CPU ``F.linear`` (so every ``nn.Linear``, of any plugin) inside it through an autograd function
whose three products (output, input gradient, weight gradient) each use the backend that measured
fastest for that shape the first time it was seen (a few products each: a one-off cost of
milliseconds). Same arithmetic, different summation order: results agree with MKL's to rounding.
Inactive under autocast (bf16 already goes to oneDNN) and off the CPU.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def available() -> bool:
    """Whether this torch build has the oneDNN linear kernel."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn(a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b_t.T (+ bias)`` by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, bias, "none", [], "")


def _aten(a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b_t.T (+ bias)`` by ATen (MKL on the CPU)."""
    return torch.mm(a, b_t.t()) if bias is None else torch.addmm(bias, a, b_t.t())


class _Chooser:
    """Per (product, shape): the faster of oneDNN and ATen, timed once (CPU time of the process, so
    that a busy shared machine does not skew the choice)."""

    def __init__(self, reps: int = 3) -> None:
        self.reps = reps
        self.choice: dict[tuple, Callable] = {}

    def __call__(self, key: tuple, a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        fn = self.choice.get(key)
        if fn is None:
            best = None
            for candidate in (_onednn, _aten):
                candidate(a, b_t, bias)  # warm-up (and reorders)
                start = time.process_time()
                for _ in range(self.reps):
                    candidate(a, b_t, bias)
                spent = time.process_time() - start
                if best is None or spent < best[0]:
                    best = (spent, candidate)
            fn = self.choice[key] = best[1]
        return fn(a, b_t, bias)

    def summary(self) -> dict[str, str]:
        return {f"{k[0]} {k[1:]}": ("onednn" if v is _onednn else "aten") for k, v in self.choice.items()}


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, chooser):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.chooser = chooser
        return chooser(("out", *x.shape, weight.shape[0]), x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        choose = ctx.chooser
        grad = grad.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # grad @ W
            dx = choose(("dx", *grad.shape, weight.shape[1]), grad, weight.t())
        if ctx.needs_input_grad[1]:  # grad.T @ x
            dw = choose(("dw", *grad.shape, x.shape[1]), grad.t(), x.t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum(0)
        return dx, dw, db, None


class OneDnnLinear(TorchFunctionMode):
    """Inside ``with OneDnnLinear():``, fp32 CPU ``F.linear`` on 2-D inputs goes through :class:`_Linear`."""

    def __init__(self, chooser: _Chooser | None = None) -> None:
        super().__init__()
        self.chooser = chooser or _Chooser()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if (x.ndim == 2 and weight.ndim == 2 and x.device.type == "cpu" and x.dtype == torch.float32
                    and weight.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
                    and not torch.is_autocast_enabled("cpu")):
                return _Linear.apply(x.contiguous(), weight, bias, self.chooser)
        return func(*args, **kwargs)
