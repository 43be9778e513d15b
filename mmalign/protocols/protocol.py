"""One run of the latent-classifier protocol: build the latent sets, train, score.

`build_task` turns an aligner and a data set into the classifier's training and test latents
(GZSL: all classes, original ids; ZSL/FSL: the unseen classes only, mapped to ``0..C-1``).
`run_classifier` trains on them for a number of epochs and scores the result, optionally after
every epoch (for epoch selection), with one host sync at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import AlignmentData
from ..errors import ConfigError
from .classifier import ClassifierHparams, predict, schedule_for, train_classifier
from .fewshot import FewShotSplit, fewshot_split
from .latents import CHUNK, LatentSet, encode_means, latents_key, modality_rows, resolve_modality, training_latents
from .metrics import harmonic_mean, per_class_accuracy
from .seeds import torch_generator

SETTINGS = ("gzsl", "zsl")


def device_of(aligner: Any) -> torch.device:
    return torch.device(getattr(aligner, "device", "cpu"))


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (so wall-clock phases are honest)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class ProtocolTask:
    """The classifier's data for one evaluation, labels in classifier space (``0..num_classes-1``).

    Attributes:
        setting: ``"gzsl"`` or ``"zsl"``.
        shots: unseen images moved to training per class.
        num_classes: classifier outputs (GZSL: all classes; ZSL: the unseen ones).
        class_ids: dataset class id of every classifier output.
        train: noisy training latents.
        test_seen: mean latents of the seen test images (GZSL only).
        test_unseen: mean latents of the unseen test images left after the few-shot split.
        seen, unseen: classifier indices of the seen and unseen classes.
        image, side: the modality names used.
        split: the few-shot split.
    """

    setting: str
    shots: int
    num_classes: int
    class_ids: np.ndarray
    train: LatentSet
    test_seen: LatentSet | None
    test_unseen: LatentSet
    seen: torch.Tensor
    unseen: torch.Tensor
    image: str
    side: str
    split: FewShotSplit


def build_task(
    aligner: Any, data: AlignmentData, setting: str, shots: int, seed: int, *, recipe, image: str = "img",
    side: str = "att", chunk: int = CHUNK,
) -> ProtocolTask:
    """Few-shot split, training latents (noise from the ``sampling`` stream) and test latents."""
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {SETTINGS}, got {setting!r}")
    image = resolve_modality(aligner, image, "sample", "image")
    side = resolve_modality(aligner, side, "class", "side")
    device = device_of(aligner)
    seen, unseen = data.seen_classes, data.unseen_classes
    key = latents_key(setting, shots)
    counts = tuple(recipe.classifier.latents[key])
    if setting == "zsl" and (counts[0] or counts[1]):
        raise ConfigError(
            f"recipe latents[{key!r}] = {counts} asks for seen-class latents, but ZSL trains on unseen classes only"
        )
    split = fewshot_split(data, shots, seed)
    image_rows = modality_rows(aligner, image, data)
    side_rows = modality_rows(aligner, side, data)
    train = training_latents(
        aligner, data, counts, seen_classes=seen, unseen_classes=unseen,
        generator=torch_generator(seed, "sampling", device), image=image, side=side, fewshot=split,
        image_rows=image_rows, side_rows=side_rows, chunk=chunk,
    )
    labels = np.asarray(data.labels)

    def test_set(index: np.ndarray) -> LatentSet:
        x = encode_means(aligner, image, image_rows, index, chunk)
        return LatentSet(x, torch.as_tensor(labels[index], dtype=torch.long, device=x.device))

    test_unseen = test_set(split.test)
    test_seen = test_set(np.asarray(data.split("test_seen"))) if setting == "gzsl" else None
    if setting == "gzsl":
        class_ids = np.arange(data.num_classes)
        seen_t = torch.as_tensor(seen, dtype=torch.long, device=device)
        unseen_t = torch.as_tensor(unseen, dtype=torch.long, device=device)
    else:  # map the unseen classes to 0..C-1 (sorted), as the reference's map_label
        class_ids = np.asarray(unseen)
        table = torch.as_tensor(class_ids, dtype=torch.long, device=device)
        train = LatentSet(train.x, torch.searchsorted(table, train.y))
        test_unseen = LatentSet(test_unseen.x, torch.searchsorted(table, test_unseen.y))
        seen_t = torch.empty(0, dtype=torch.long, device=device)
        unseen_t = torch.arange(len(class_ids), device=device)
    return ProtocolTask(setting, int(shots), len(class_ids), class_ids, train, test_seen, test_unseen,
                        seen_t, unseen_t, image, side, split)


def score(task: ProtocolTask, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """Fractions on the device: ``S``, ``U``, ``H`` (GZSL) or ``top1`` (ZSL), per-class averaged."""
    unseen_pred = predict(weight, bias, task.test_unseen.x)
    u = per_class_accuracy(unseen_pred, task.test_unseen.y, task.unseen, task.num_classes)
    if task.setting == "zsl":
        return {"top1": u}
    seen_pred = predict(weight, bias, task.test_seen.x)
    s = per_class_accuracy(seen_pred, task.test_seen.y, task.seen, task.num_classes)
    return {"S": s, "U": u, "H": harmonic_mean(s, u)}


def selection_metric(setting: str) -> str:
    """What epoch selection maximises: ``H`` (GZSL) or ``top1`` (ZSL)."""
    return "H" if setting == "gzsl" else "top1"


@dataclass
class ClassifierRun:
    """Final scores (percent), per-epoch scores when tracked (percent), the wall time, the final
    classifier's predicted class index of every test image (``test_unseen``, ``test_seen`` under
    GZSL), and when tracked the classifier's ``(weight, bias)`` after every epoch."""

    final: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    snapshots: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


def run_classifier(
    task: ProtocolTask, epochs: int, seed: int, *, hparams: ClassifierHparams, reference: bool = False,
    track: bool = False,
) -> ClassifierRun:
    """Train for ``epochs`` (init and shuffles from the ``classifier`` stream) and score; with
    ``track``, also score after every epoch (no extra randomness, one host sync at the end)."""
    device = task.train.x.device
    start = time.perf_counter()
    tracked: list[dict[str, torch.Tensor]] = []
    snapshots: list[tuple[torch.Tensor, torch.Tensor]] = []

    def callback(epoch: int, w: torch.Tensor, b: torch.Tensor) -> None:
        tracked.append(score(task, w, b))
        snapshots.append((w.detach().clone(), b.detach().clone()))

    weight, bias = train_classifier(
        task.train.x, task.train.y, task.num_classes, int(epochs),
        generator=torch_generator(seed, "classifier", device), schedule=schedule_for(task.setting),
        hparams=hparams, on_epoch=callback if track else None, reference=reference,
    )
    final = score(task, weight, bias)
    keys = list(final)
    stacked = torch.stack([final[k] for k in keys] + [h[k] for h in tracked for k in keys]).mul(100).tolist()
    synchronize(device)
    seconds = time.perf_counter() - start
    rows = [dict(zip(keys, stacked[i:i + len(keys)])) for i in range(0, len(stacked), len(keys))]
    return ClassifierRun(rows[0], rows[1:], seconds, classify_test_images(task, weight, bias), snapshots)


def classify_test_images(task: ProtocolTask, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, np.ndarray]:
    """The predicted class index of every test image: ``test_unseen`` and (GZSL) ``test_seen``."""
    tests = {"test_unseen": task.test_unseen, "test_seen": task.test_seen}
    return {k: predict(weight, bias, s.x).cpu().numpy() for k, s in tests.items() if s is not None}
