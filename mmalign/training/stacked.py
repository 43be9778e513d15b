"""S copies of an `AlignedVAE`'s networks as stacked weights.

Every parameter gets a leading run dimension. CADA's own networks (`MLPEncoder`
and `MLPDecoder`, matched by exact type) run as hand-written batched matrix
products (``torch.baddbmm``) on weights stored ``(S, in, out)``, with the encoder's mu and logvar heads
in one ``(S, hidden, 2 * latent)`` matrix: one product per layer for all runs, no per-op
dispatch of ``vmap``, and each weight gradient lands in its leaf's layout (no copies). Any other
module runs through ``torch.func.vmap`` over ``torch.func.functional_call``; its 2-D parameters are
stored transposed as well, for the same reason. `StackedNetworks.state_dict` maps run ``s``
back to the original ``state_dict`` keys and layouts.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..model import AlignedVAE
from ..errors import ConfigError
from ..modality import MLPDecoder, MLPEncoder


def _stack(modules: Sequence[nn.Module], key: str) -> torch.Tensor:
    return torch.stack([dict(m.named_parameters())[key].detach() for m in modules])


def _weight(modules: Sequence[nn.Module], key: str) -> nn.Parameter:
    """nn.Linear weights ``(out, in)`` of every run as one ``(S, in, out)`` leaf."""
    return nn.Parameter(_stack(modules, key).transpose(1, 2).contiguous())


def _bias(modules: Sequence[nn.Module], key: str) -> nn.Parameter:
    """Biases ``(out,)`` as one ``(S, 1, out)`` leaf (broadcasts over the batch)."""
    return nn.Parameter(_stack(modules, key).unsqueeze(1).contiguous())


class _StackedEncoder:
    def __init__(self, modules: Sequence[MLPEncoder]) -> None:
        self.latent = modules[0].mu.out_features
        self.w1, self.b1 = _weight(modules, "body.0.weight"), _bias(modules, "body.0.bias")
        heads_w = torch.cat([_stack(modules, "mu.weight"), _stack(modules, "logvar.weight")], dim=1)
        heads_b = torch.cat([_stack(modules, "mu.bias"), _stack(modules, "logvar.bias")], dim=1)
        self.wh = nn.Parameter(heads_w.transpose(1, 2).contiguous())
        self.bh = nn.Parameter(heads_b.unsqueeze(1).contiguous())

    def parameters(self) -> list[nn.Parameter]:
        return [self.w1, self.b1, self.wh, self.bh]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        out = torch.baddbmm(self.bh, h, self.wh)
        return out[..., : self.latent], out[..., self.latent:]

    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        wh, bh = self.wh[s].t(), self.bh[s, 0]
        k = self.latent
        return {"body.0.weight": self.w1[s].t(), "body.0.bias": self.b1[s, 0],
                "mu.weight": wh[:k], "mu.bias": bh[:k], "logvar.weight": wh[k:], "logvar.bias": bh[k:]}


class _StackedDecoder:
    def __init__(self, modules: Sequence[MLPDecoder]) -> None:
        self.w1, self.b1 = _weight(modules, "0.weight"), _bias(modules, "0.bias")
        self.w2, self.b2 = _weight(modules, "2.weight"), _bias(modules, "2.bias")

    def parameters(self) -> list[nn.Parameter]:
        return [self.w1, self.b1, self.w2, self.b2]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.baddbmm(self.b1, z, self.w1))
        return torch.baddbmm(self.b2, h, self.w2)

    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        return {"0.weight": self.w1[s].t(), "0.bias": self.b1[s, 0], "2.weight": self.w2[s].t(), "2.bias": self.b2[s, 0]}


class _VmappedModule:
    """Any module, its parameters stacked (2-D ones stored transposed), run with ``vmap``."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.module = modules[0]
        self.buffers = {k: torch.stack([dict(m.named_buffers())[k] for m in modules]) for k, _ in self.module.named_buffers()}
        self.leaves: dict[str, nn.Parameter] = {}
        for key, _ in self.module.named_parameters():
            stacked = _stack(modules, key)
            self.leaves[key] = nn.Parameter(stacked.transpose(1, 2).contiguous() if stacked.ndim == 3 else stacked)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.leaves.values())

    def _views(self) -> dict[str, torch.Tensor]:
        return {k: (v.transpose(1, 2) if v.ndim == 3 else v) for k, v in self.leaves.items()}

    def __call__(self, x: torch.Tensor):
        def one(params, buffers, xi):
            return functional_call(self.module, (params, buffers), (xi,))

        return vmap(one)(self._views(), self.buffers, x)

    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        return {**{k: v[s] for k, v in self._views().items()}, **{k: v[s] for k, v in self.buffers.items()}}


def _stacked(modules: Sequence[nn.Module]):
    kind = type(modules[0])
    if any(type(m) is not kind for m in modules):
        raise ConfigError("train_seeds needs the same network types in every run")
    if kind is MLPEncoder:
        return _StackedEncoder(modules)
    if kind is MLPDecoder:
        return _StackedDecoder(modules)
    return _VmappedModule(modules)


class StackedNetworks:
    """The encoders and decoders of ``models`` (same architecture) with stacked weights."""

    def __init__(self, models: Sequence[AlignedVAE]) -> None:
        template = models[0]
        keys = [(k, tuple(v.shape)) for k, v in template.state_dict().items()]
        for i, m in enumerate(models[1:], 1):
            if [(k, tuple(v.shape)) for k, v in m.state_dict().items()] != keys:
                raise ConfigError(f"train_seeds needs identical architectures; model {i} differs from model 0")
        self.names = list(template.names)
        self.encoders = {n: _stacked([m.encoders[n] for m in models]) for n in self.names}
        self.decoders = {n: _stacked([m.decoders[n] for m in models]) for n in self.names}
        self.runs = len(models)

    def parameters(self) -> list[nn.Parameter]:
        """Every leaf (one fused optimiser over these is S independent optimisers)."""
        return [p for n in self.names for net in (self.encoders[n], self.decoders[n]) for p in net.parameters()]

    def encode(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoders[name](x)

    def decode(self, name: str, z: torch.Tensor) -> torch.Tensor:
        return self.decoders[name](z)

    @torch.no_grad()
    def state_dict(self, s: int) -> dict[str, torch.Tensor]:
        """Run ``s``'s weights under the ``AlignedVAE.state_dict`` keys (contiguous copies)."""
        out: dict[str, torch.Tensor] = {}
        for n in self.names:
            for prefix, net in ((f"encoders.{n}.", self.encoders[n]), (f"decoders.{n}.", self.decoders[n])):
                for key, value in net.state_dict(s).items():
                    out[prefix + key] = value.detach().clone(memory_format=torch.contiguous_format)
        return out
