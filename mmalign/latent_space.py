"""The aligned latent space of a trained aligner: encode rows (of one modality or a subset), embed
them, translate between modalities and retrieve across them. `Aligner` has these
methods through `LatentSpace`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .errors import ConfigError, DataError


class LatentSpace:
    """Mixin of `Aligner`: needs ``modalities``, ``names``, ``dims``,
    ``normalisers``, ``device`` and ``_require_model()``."""

    @torch.no_grad()
    def encode(self, name: str | Sequence[str], rows: Any, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)`` of raw rows of modality ``name`` (normalised as in training).

        ``rows`` is ``(n, dim)``, numpy or torch. Returns two **torch** tensors ``(n, latent_size)``
        on the aligner's device; `embed` returns the means in the type given.

        A subset of modalities encodes too: ``name`` a list or tuple of modality names and ``rows``
        a mapping name -> rows (the same ``n`` each) give the product of their posteriors with the
        prior ``N(0, I)`` (`mmalign.posterior.product_of_experts`, MVAE's joint posterior)."""
        if not isinstance(name, str):
            return self._encode_subset(name, rows, batch_size)
        model = self._require_model()
        if name not in self.modalities:
            raise ConfigError(f"unknown modality {name!r}; this aligner has {self.names}")
        x = torch.as_tensor(np.asarray(rows, dtype=np.float32) if isinstance(rows, np.ndarray) else rows)
        if x.ndim != 2 or x.shape[1] != self.dims[name]:
            raise DataError(f"modality {name!r} expects rows of dimension {self.dims[name]}, got shape {tuple(x.shape)}")
        model.eval()
        x = self.normalisers[name](x.to(self.device, torch.float32))
        mus, logvars = zip(*(model.encode(name, chunk) for chunk in x.split(batch_size)))
        return torch.cat(mus), torch.cat(logvars)

    def _encode_subset(self, names: Sequence[str], rows: Any, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        from .posterior import product_of_experts

        names = list(names)
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"a subset of modalities needs distinct names, got {names}")
        if not isinstance(rows, dict) or set(rows) != set(names):
            raise DataError(f"encoding the subset {names} needs a dict of rows keyed by exactly those names, got "
                            f"{sorted(rows) if isinstance(rows, dict) else type(rows).__name__}")
        counts = {n: len(rows[n]) for n in names}
        if len(set(counts.values())) != 1:
            raise DataError(f"every modality of a subset needs the same number of rows, got {counts}")
        return product_of_experts([self.encode(n, rows[n], batch_size) for n in names])

    def embed(self, name: str | Sequence[str], x: Any, batch_size: int = 8192) -> np.ndarray | torch.Tensor:
        """Posterior means of raw rows ``x`` ``(n, dim)`` of modality ``name``: ``(n, latent_size)``.

        numpy in, numpy (float32) out; torch in, torch out on ``x``'s device. Rows of every
        modality land in the same latent space, so embeddings of different modalities compare.
        A subset embeds as its joint posterior's mean: ``name`` a list of names and ``x`` a dict
        name -> rows (see `encode`)."""
        mu, _ = self.encode(name, x, batch_size)
        like = _first_rows(x)
        return mu.to(like.device) if isinstance(like, torch.Tensor) else mu.cpu().numpy()

    @torch.no_grad()
    def translate(self, source: str | Sequence[str], target: str, x: Any,
                  batch_size: int = 8192) -> np.ndarray | torch.Tensor:
        """Rows ``x`` of modality ``source`` rendered as modality ``target``: encode (posterior
        means), decode with ``target``'s decoder, undo ``target``'s normaliser (``minmax``; an
        ``l2`` normaliser leaves unit-norm rows). Returns ``(n, dims[target])``, numpy or torch as
        given (torch on ``x``'s device). ``source`` may be a subset (a list of names, ``x`` a dict
        name -> rows): it decodes from the subset's joint posterior."""
        model = self._require_model()
        if target not in self.modalities:
            raise ConfigError(f"unknown modality {target!r}; this aligner has {self.names}")
        mu, _ = self.encode(source, x, batch_size)
        model.eval()
        out = torch.cat([self.normalisers[target].inverse(model.decoders[target](chunk)) for chunk in mu.split(batch_size)])
        like = _first_rows(x)
        return out.to(like.device) if isinstance(like, torch.Tensor) else out.cpu().numpy()

    @torch.no_grad()
    def retrieve(
        self, query_modality: str | Sequence[str], queries: Any, gallery_modality: str | Sequence[str],
        gallery: Any, k: int | None = 10,
    ) -> tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]:
        """Cross-modal retrieval in the aligned space: for each query row, the ``k`` most similar
        gallery rows (cosine between posterior means, computed in float64).

        Args:
            query_modality: the modality of the queries.
            queries: raw rows of ``query_modality``, ``(Q, d_q)``.
            gallery_modality: the modality searched.
            gallery: raw rows of ``gallery_modality``, ``(G, d_g)``.
            k: results per query (default 10; None: the whole gallery ranked). At most ``G``.

        Either side may be a subset of modalities (a list of names with a dict name -> rows), which
        is embedded as its joint posterior (`encode`).

        Returns:
            ``(indices, scores)``, each ``(Q, k)``: gallery row numbers from best to worst and
            their cosine similarities (ties keep gallery order). numpy (int64, float64) when
            ``queries`` is numpy; torch on the queries' device when it is a tensor.
        """
        q, g = self.embed(query_modality, _as_tensor(queries)), self.embed(gallery_modality, _as_tensor(gallery))
        size = g.shape[0]
        k = size if k is None else int(k)
        if not 1 <= k <= size:
            raise ConfigError(f"k must lie in 1..{size} (the gallery's rows), got {k}")
        sim = _unit_rows(q.double()) @ _unit_rows(g.double().to(q.device)).T
        scores, indices = torch.sort(sim, dim=1, descending=True, stable=True)
        indices, scores = indices[:, :k], scores[:, :k]
        if isinstance(_first_rows(queries), torch.Tensor):
            return indices, scores
        return indices.cpu().numpy(), scores.cpu().numpy()


def _as_tensor(x: Any) -> Any:
    """Rows as a tensor; a dict of rows (a subset's) as a dict of tensors."""
    if isinstance(x, dict):
        return {k: _as_tensor(v) for k, v in x.items()}
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))


def _first_rows(x: Any) -> Any:
    """The rows that decide the output type: ``x``, or a subset's first modality's rows."""
    if isinstance(x, dict):
        if not x:
            raise DataError("a subset of modalities needs rows of at least one modality")
        return next(iter(x.values()))
    return x


def _unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit Euclidean norm (zero rows stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)
