""":meth:`mmalign.Aligner.fit` on the fast paths, for one seed or several at once.

Both take a configured (untrained) :class:`~mmalign.aligner.Aligner`, fit its normalisers on the
training split exactly as ``Aligner.fit`` does, build the networks from the seed (the same initial
weights as ``Aligner.fit``), and train with :func:`~mmalign.fast.train_fast` /
:func:`~mmalign.fast.train_seeds`. The resulting aligners save, load and evaluate like any other.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch

from ..aligner import Aligner
from ..data import AlignmentData
from ..training import EpochLog
from .seeds import train_seeds
from .train import train_fast


def fit_fast(
    aligner: Aligner, data: AlignmentData, seed: int | None = None, split: str = "trainval",
    progress: bool = True, epochs: int | None = None, **options: Any,
) -> list[EpochLog]:
    """``aligner.fit(data, seed, split, progress, epochs)`` trained with :func:`train_fast`
    (``options``: ``precision``, ``compile``, ``num_threads``, ``linear``). Returns the history.

    No checkpointing or resuming: for those, ``Aligner.fit`` itself should call ``train_fast``
    (it takes the same arguments as :func:`mmalign.training.train`)."""
    aligner.override(seed=seed, epochs=epochs)
    data.validate()
    tensors = aligner.training_tensors(data, split)
    model = aligner.build(aligner.dims)
    generator = torch.Generator(device=aligner.device).manual_seed(aligner.config.seed)
    aligner.history = train_fast(model, tensors, aligner.config.training, generator, progress=progress, **options)
    return aligner.history


def fit_seeds(
    aligner: Aligner, data: AlignmentData, seeds: Sequence[int], split: str = "trainval",
    progress: bool = True, epochs: int | None = None, **options: Any,
) -> list[Aligner]:
    """One fitted copy of ``aligner`` per seed, all trained together by :func:`train_seeds`
    (``options``: ``precision``, ``compile``, ``num_threads``). Copy ``s`` equals
    ``aligner.fit(data, seed=seeds[s])`` up to floating-point rounding. ``aligner`` itself is left
    untrained except for its fitted normalisers."""
    if len(seeds) == 0:
        raise ValueError("fit_seeds needs at least one seed")
    aligner.override(epochs=epochs)
    data.validate()
    tensors = aligner.training_tensors(data, split)  # normalisers do not depend on the seed
    fitted: list[Aligner] = []
    for seed in seeds:
        one = copy.copy(aligner)
        one.config = aligner.config.model_copy(update={"seed": int(seed)})
        one.normalisers = dict(aligner.normalisers)
        one.dims = dict(aligner.dims)
        one.model = None
        one.history = []
        one.build(one.dims)
        fitted.append(one)
    generators = [torch.Generator(device=one.device).manual_seed(one.config.seed) for one in fitted]
    runs = train_seeds([one.model for one in fitted], tensors, aligner.config.training, generators,
                       progress=progress, **options)
    for one, run in zip(fitted, runs):
        one.history = run.history
    return fitted
