"""The ``cub-latents`` data set: real image-derived CUB features, shipped with the package.

Per-sample features: the 64-d image-encoder means that the CADA-VAE authors' model produced for the
4731 CUB GZSL test images (1764 of the 150 seen classes, 2967 of the 50 unseen ones), published in
edgarschnfld/CADA-VAE-PyTorch (commit c5cbda85, branch ``saving_training_results``; MIT licence);
see ``registry/data/cadavae_cub/SOURCES.md``. Class side information: CUB's 312 attributes and
the 1024-d sentence embeddings of Reed et al. (xlsa17 ``att_splits.mat``/``sent_splits.mat``), from
the CUB text bundle the package ships (``registry/data/cub_text``). Nothing is downloaded and the
data root is not read.

Splits, xlsa17-style, drawn once with seed `SPLIT_SEED` (fixed: it is part of the data set,
not of a run): the seen-class images are split per class 2:1 into ``trainval`` and ``test_seen``
(stratified; every class keeps at least one image on each side); ``test_unseen`` holds every
unseen-class image. For the validation policy, `VAL_CLASSES` of the 150 seen classes are
drawn as validation classes: ``train`` = the ``trainval`` images of the other 100 classes, ``val``
= those of the 50 validation classes (the proposed split's 100/50 proportion).

The encoder behind these latents was trained briefly (its committed config has ``epochs: 1``), so
they separate classes only weakly: a nearest-class-mean check reaches 22 % (seen) and 32 %
(unseen) over 200 classes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

import mmalign
from mmalign.data import AlignmentData
from mmalign.errors import DataError

NAME = "cub-latents"
FILE = "cub_latents.safetensors"
SPLIT_SEED = 0
VAL_CLASSES = 50
#: Fraction of each seen class's images used for training (the rest: ``test_seen``).
TRAIN_FRACTION = 2 / 3


def data_file() -> Path:
    return Path(str(resources.files("mmalign_registry") / "data" / "cadavae_cub" / FILE))


def splits(labels: np.ndarray, seen_rows: np.ndarray, unseen_rows: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """The seeded stratified splits described in the module docstring."""
    rng = np.random.default_rng(seed)
    trainval, test_seen = [], []
    for cls in np.unique(labels[seen_rows]):
        members = seen_rows[labels[seen_rows] == cls]
        members = members[rng.permutation(members.size)]
        k = min(max(int(round(TRAIN_FRACTION * members.size)), 1), members.size - 1) if members.size > 1 else 1
        trainval.append(members[:k])
        test_seen.append(members[k:])
    trainval, test_seen = np.sort(np.concatenate(trainval)), np.sort(np.concatenate(test_seen))
    seen_classes = np.unique(labels[seen_rows])
    val_classes = np.sort(rng.choice(seen_classes, size=VAL_CLASSES, replace=False))
    in_val = np.isin(labels[trainval], val_classes)
    return {"trainval": trainval, "test_seen": test_seen, "test_unseen": np.sort(unseen_rows),
            "train": trainval[~in_val], "val": trainval[in_val]}


def read(data_root=None) -> AlignmentData:
    """The data set (``data_root`` is not used: everything is shipped)."""
    from safetensors.numpy import load_file

    from mmalign.retrieval.cub_data import load_cub_text

    path = data_file()
    if not path.is_file():
        raise DataError(f"{path}: missing; the mmalign installation is incomplete (reinstall mmalign)")
    t = load_file(str(path))
    features = np.concatenate([t["test_seen_features"], t["test_unseen_features"]]).astype(np.float32)
    labels = np.concatenate([t["test_seen_labels"], t["test_unseen_labels"]]).astype(np.int64)
    n_seen = t["test_seen_labels"].shape[0]
    rows = np.arange(labels.size)
    text = load_cub_text()
    if not (np.isin(labels[:n_seen], text.seen).all() and np.isin(labels[n_seen:], text.unseen).all()):
        raise DataError(f"{path}: labels disagree with the CUB proposed split of the shipped text bundle")
    return AlignmentData(
        labels=labels, class_names=list(text.class_names),
        sample_features={"features": features},
        class_features={"attributes": np.asarray(text.attributes, dtype=np.float32),
                        "sentences": np.asarray(text.sentence_embeddings, dtype=np.float32)},
        splits=splits(labels, rows[:n_seen], rows[n_seen:]),
        name=NAME,
        meta={"source": "edgarschnfld/CADA-VAE-PyTorch@c5cbda85 (CUB test-image latents) + xlsa17 CUB",
              "split_seed": SPLIT_SEED, "file": str(path)},
    )


@mmalign.hookimpl
def register_datasets(register):
    register(NAME, read)
