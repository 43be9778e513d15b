"""fp32 ``F.linear`` through oneDNN on the CPU.

PyTorch's CPU build sends fp32 matrix products to MKL. On AMD CPUs MKL does not take its AVX-512
code path, and oneDNN (also in every CPU build, used by PyTorch for bf16) is faster on CADA-VAE's
shapes: on a 2-core Zen 5 EPYC, one thread, forward 50x2048->1560 3.6 vs 7.6 ms, 100x1660->2048
9.4 vs 18.9 ms, and about 2x on the backward products (``benchmarks/SPEED.md``). Inside ``with
OneDnnLinear():`` every fp32 CPU ``F.linear`` (so every ``nn.Linear``, of any plugin) runs through an
autograd function whose three products (output, input gradient, weight gradient) use oneDNN.

On Intel CPUs MKL takes its AVX-512 path and is the faster of the two on these shapes: on a 2-core
Intel Xeon with AMX, one thread, the whole default step took 51.5-53.0 / 54.1-55.2 ms CPU (cross term
off / on) through MKL against 56.6-59.1 / 59.4-62.6 ms through oneDNN (interleaved, load average
10-14; the weight- and input-gradient products 10-25 % faster). So the engine's ``linear="auto"``
uses this route only where `preferred` (the CPU is not an Intel one).

The route is fixed per machine, never chosen by timing: the same seed must give the same bits in
every process (a resumed run continues exactly; two runs of one seed agree). Same arithmetic as MKL in a
different summation order: results agree with PyTorch's default kernels to rounding. Inactive
under autocast (bf16 already goes to oneDNN) and off the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def available() -> bool:
    """Whether this torch build has the oneDNN linear kernel."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...; ``""`` where unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def preferred() -> bool:
    """Whether the fp32 products go through oneDNN by default: where it is available and the CPU
    is not an Intel one (on Intel, MKL's AVX-512 kernels are faster on CADA-VAE's shapes)."""
    return available() and cpu_vendor() != "GenuineIntel"


def _onednn(a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b_t.T (+ bias)`` by oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, bias, "none", [], "")


def _aten(a: torch.Tensor, b_t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b_t.T (+ bias)`` by ATen (MKL on the CPU): what PyTorch does without this module."""
    return torch.mm(a, b_t.t()) if bias is None else torch.addmm(bias, a, b_t.t())


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # grad @ W
            dx = _onednn(grad, weight.t())
        if ctx.needs_input_grad[1]:  # grad.T @ x
            dw = _onednn(grad.t(), x.t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = grad.sum(0)
        return dx, dw, db


class OneDnnLinear(TorchFunctionMode):
    """Inside ``with OneDnnLinear():``, fp32 CPU ``F.linear`` on 2-D inputs goes through `_Linear`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if (x.ndim == 2 and weight.ndim == 2 and x.device.type == "cpu" and x.dtype == torch.float32
                    and weight.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
                    and not torch.is_autocast_enabled("cpu")):
                return _Linear.apply(x.contiguous(), weight, bias)
        return func(*args, **kwargs)
