"""The latent data sets of the final classifier, built exactly as the reference code builds them.

Training latents are sampled *with* noise from the aligner's posteriors: images of the seen classes,
class embeddings of the seen and unseen classes and (few-shot) the moved images of the unseen
classes, a fixed number per class (``recipe.classifier.latents``). A class with fewer items than the
count repeats its items in order and keeps the first ``count``; a class embedding is repeated
``count`` times and the noise makes every latent different. Test latents are the posterior means.

The groups are concatenated in the reference's order: seen images, unseen images, seen embeddings,
unseen embeddings. Only distinct rows are encoded (the encoders are deterministic in eval mode), in
chunks, so memory stays bounded by the chunk size and the latents themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import AlignmentData
from ..errors import ConfigError, DataError
from .fewshot import FewShotSplit

#: Rows per encoder call.
CHUNK = 4096


def latents_key(setting: str, shots: int) -> str:
    """The ``recipe.classifier.latents`` key: ``gzsl``, ``gzsl_fewshot``, ``zsl`` or ``zsl_fewshot``."""
    if setting not in ("gzsl", "zsl"):
        raise ConfigError(f"setting must be 'gzsl' or 'zsl', got {setting!r}")
    return setting if int(shots) == 0 else f"{setting}_fewshot"


def repeat_to_count(items: np.ndarray, count: int) -> np.ndarray:
    """The reference's rule: repeat ``items`` in order until ``count`` are reached, keep the first
    ``count`` (``[a, b, c]``, 7 -> ``[a, b, c, a, b, c, a]``; 2 -> ``[a, b]``)."""
    items = np.asarray(items)
    if count > 0 and items.size == 0:
        raise DataError(f"cannot draw {count} items from an empty class")
    return np.resize(items, int(count))


@dataclass
class LatentSet:
    """Latents and their dataset class ids, on the aligner's device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def resolve_modality(aligner: Any, name: str, granularity: str, role: str) -> str:
    """``name`` if the aligner has it; otherwise its only modality of ``granularity``."""
    modalities = aligner.modalities
    if name in modalities:
        found = getattr(modalities[name], "granularity", granularity)
        if found != granularity:
            raise ConfigError(f"the {role} modality {name!r} must be per-{granularity}, but it is per-{found}")
        return name
    candidates = [n for n, m in modalities.items() if getattr(m, "granularity", None) == granularity]
    if len(candidates) == 1:
        return candidates[0]
    raise ConfigError(
        f"the aligner has no {role} modality named {name!r} (it has {list(modalities)}); "
        f"pass {role}=<name> with one of the per-{granularity} modalities {candidates}"
    )


def modality_rows(aligner: Any, name: str, data: AlignmentData) -> np.ndarray:
    """The raw rows of modality ``name``: its ``prepare(data)`` hook (the array the aligner was
    trained on), else ``data.array(source)``."""
    modality = aligner.modalities[name]
    if hasattr(modality, "prepare"):
        return modality.prepare(data)
    return np.asarray(data.array(getattr(modality, "source", name)), dtype=np.float32)


def encode_rows(aligner: Any, name: str, rows: np.ndarray, index: np.ndarray, chunk: int = CHUNK,
                means_only: bool = False):
    """Posterior ``(mu, logvar)`` (or ``mu`` alone) of ``rows[index]``, encoded ``chunk`` rows at a time."""
    mus, logvars = [], []
    for start in range(0, len(index), chunk):
        mu, logvar = aligner.encode(name, rows[index[start:start + chunk]])
        mus.append(mu)
        logvars.append(logvar)
    if not mus:
        raise DataError(f"nothing to encode for modality {name!r}")
    mu = torch.cat(mus)
    return mu if means_only else (mu, torch.cat(logvars))


def encode_means(aligner: Any, name: str, rows: np.ndarray, index: np.ndarray, chunk: int = CHUNK) -> torch.Tensor:
    """Test latents: the posterior means of ``rows[index]`` (no noise)."""
    return encode_rows(aligner, name, rows, np.asarray(index), chunk, means_only=True)


def _per_class(items: np.ndarray, item_labels: np.ndarray, classes: np.ndarray, count: int, what: str):
    index, labels = [], []
    for cls in classes:
        members = items[item_labels == cls]
        if members.size == 0:
            raise DataError(f"class {int(cls)} has no {what} to sample {count} training latents from")
        index.append(repeat_to_count(members, count))
        labels.append(np.full(count, cls, dtype=np.int64))
    return np.concatenate(index), np.concatenate(labels)


def training_latents(
    aligner: Any,
    data: AlignmentData,
    counts: tuple[int, int, int, int],
    *,
    seen_classes: np.ndarray,
    unseen_classes: np.ndarray,
    generator: torch.Generator,
    image: str,
    side: str,
    seen_split: str = "trainval",
    fewshot: FewShotSplit | None = None,
    image_rows: np.ndarray | None = None,
    side_rows: np.ndarray | None = None,
    chunk: int = CHUNK,
) -> LatentSet:
    """Noisy training latents, ``counts = (seen images, seen embeddings, unseen embeddings, unseen
    images)`` per class (see the module doc for the rules and the order).

    Seen images come from ``data.splits[seen_split]``; unseen images from ``fewshot.train``. Noise
    comes from ``aligner.sample_latents(mu, logvar, generator)``.
    """
    n_seen_img, n_seen_emb, n_unseen_emb, n_unseen_img = (int(c) for c in counts)
    labels = np.asarray(data.labels)
    if image_rows is None:
        image_rows = modality_rows(aligner, image, data)
    if side_rows is None:
        side_rows = modality_rows(aligner, side, data)

    groups: list[tuple[str, np.ndarray, np.ndarray]] = []   # (modality, row index, class ids)
    if n_seen_img:
        items = np.asarray(data.split(seen_split))
        groups.append((image, *_per_class(items, labels[items], seen_classes, n_seen_img, f"images in {seen_split!r}")))
    if n_unseen_img:
        if fewshot is None or fewshot.shots == 0:
            raise ConfigError(f"the latent counts {counts} need unseen images; pass a few-shot split with shots > 0")
        groups.append((image, *_per_class(fewshot.train, labels[fewshot.train], unseen_classes, n_unseen_img, "moved shots")))
    for n, classes in ((n_seen_emb, seen_classes), (n_unseen_emb, unseen_classes)):
        if n:
            classes = np.asarray(classes, dtype=np.int64)
            groups.append((side, np.repeat(classes, n), np.repeat(classes, n)))
    if not groups:
        raise ConfigError(f"latent counts {counts} ask for no training latents at all")

    posteriors = {}
    for name, rows in ((image, image_rows), (side, side_rows)):
        wanted = [g[1] for g in groups if g[0] == name]
        if wanted:
            unique = np.unique(np.concatenate(wanted))
            posteriors[name] = (unique, *encode_rows(aligner, name, rows, unique, chunk))

    xs, ys = [], []
    for name, index, cls in groups:
        unique, mu, logvar = posteriors[name]
        where = torch.as_tensor(np.searchsorted(unique, index), device=mu.device)
        for start in range(0, len(where), 16 * chunk):
            part = where[start:start + 16 * chunk]
            xs.append(aligner.sample_latents(mu[part], logvar[part], generator))
        ys.append(torch.as_tensor(cls, dtype=torch.long, device=mu.device))
    return LatentSet(torch.cat(xs), torch.cat(ys))
