"""The seeded few-shot split: ``k`` images of every unseen class move from the unseen test split to
the classifier's training set (the VAE is trained before and never sees them).

As in the reference code, the shots of a class are the first ``k`` of a random permutation of that
class's test images; the rest stay in the test set. The reference sets no seed; here a numpy
generator derived from the run seed draws the permutations, one per class in sorted class order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import AlignmentData
from ..errors import ConfigError
from .seeds import numpy_rng


@dataclass(frozen=True)
class FewShotSplit:
    """Which unseen test images train the classifier and which stay for testing.

    Attributes:
        shots: images moved per unseen class (0: nothing moved).
        seed: the run seed the permutations came from.
        train: sample indices of the moved shots, grouped by class (ascending class id), each
            class's shots in permutation order (the order the latent sampler repeats them in).
        test: the remaining sample indices of the unseen test split, in their original order.
    """

    shots: int
    seed: int
    train: np.ndarray
    test: np.ndarray


def fewshot_split(data: AlignmentData, shots: int, seed: int = 0, split: str = "test_unseen") -> FewShotSplit:
    """Move ``shots`` images of each class of ``data.splits[split]`` to training (see module doc).

    Raises `ConfigError` when ``shots`` is negative or when some class has
    ``shots`` or fewer images (nothing would be left to test it on).
    """
    shots = int(shots)
    if shots < 0:
        raise ConfigError(f"shots must be >= 0, got {shots}")
    idx = np.asarray(data.split(split))
    if shots == 0:
        return FewShotSplit(0, int(seed), np.empty(0, dtype=np.int64), idx.astype(np.int64))
    labels = np.asarray(data.labels)[idx]
    rng = numpy_rng(seed, "fewshot")
    moved = []
    keep = np.ones(idx.size, dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)           # positions within the split, in split order
        if members.size <= shots:
            name = data.class_names[cls] if cls < len(data.class_names) else str(cls)
            raise ConfigError(
                f"{data.name}: {shots}-shot split impossible: unseen class {int(cls)} ({name!r}) has only "
                f"{members.size} images in split {split!r}; need at least {shots + 1} (the shots plus test images that stay)"
            )
        chosen = members[rng.permutation(members.size)[:shots]]
        moved.append(idx[chosen])
        keep[chosen] = False
    return FewShotSplit(shots, int(seed), np.concatenate(moved).astype(np.int64), idx[keep].astype(np.int64))
