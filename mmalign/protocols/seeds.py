"""One run seed, several independent random streams.

The protocol draws randomness in three places: the few-shot split, the noise of the training
latents and the classifier (init and shuffling). Each gets its own stream derived from the run seed
with `numpy.random.SeedSequence`, so the streams are independent of each other and the same
seed always gives the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

#: Stream names; their position is the spawn key, so never reorder, only append.
STREAMS = ("fewshot", "sampling", "classifier", "validation")


def derive_seed(seed: int, stream: str) -> int:
    """A 64-bit seed for ``stream`` (one of `STREAMS`) derived from the run ``seed``."""
    key = STREAMS.index(stream)
    sequence = np.random.SeedSequence(int(seed) & (2**64 - 1), spawn_key=(key,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def numpy_rng(seed: int, stream: str) -> np.random.Generator:
    """A numpy generator for ``stream``."""
    return np.random.default_rng(derive_seed(seed, stream))


def torch_generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` for ``stream``."""
    return torch.Generator(device=torch.device(device)).manual_seed(derive_seed(seed, stream))
