"""The 2-D map of a trained checkpoint's latent space: posterior means of test images and of the
class side information, embedded together with t-SNE (scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError


@dataclass
class LatentMap:
    """``xy`` (N, 2) t-SNE coordinates; per point its ``classes`` id, ``modality`` name and whether
    its class is ``unseen``; ``class_names`` and the data's ``dataset`` name."""

    xy: np.ndarray
    classes: np.ndarray
    modality: np.ndarray
    unseen: np.ndarray
    class_names: list[str]
    dataset: str
    synthetic: bool


def latent_map(checkpoint: Path, data_dir: str | None = None, max_points: int = 1500, seed: int = 0) -> LatentMap:
    """Encode up to ``max_points`` test images (seen and unseen, an even share per class) and every
    class's side information with the checkpoint, then t-SNE the means to 2-D (``seed``, default 0)
    with as many threads as torch uses."""
    import torch
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    from ..aligner import Aligner
    from ..checkpoint import read_config
    from ..runs import parse_run_config, load_data

    cfg = read_config(checkpoint)
    if "run" not in cfg:
        raise ConfigError(f"{checkpoint}/config.json: no 'run' section, so the data it was trained on is unknown")
    run = parse_run_config(cfg["run"], f"{checkpoint}/config.json: run")
    if data_dir:
        run.data.data_dir = data_dir
    aligner = Aligner.load(checkpoint, device="cpu")
    data = load_data(run.data)
    rng = np.random.default_rng(seed)
    test = np.concatenate([data.split("test_seen"), data.split("test_unseen")])
    per_class = max(1, max_points // max(1, len(np.unique(data.labels[test]))))
    chosen = np.concatenate([rng.permutation(test[data.labels[test] == c])[:per_class]
                             for c in np.unique(data.labels[test])])
    unseen_classes = set(int(c) for c in data.unseen_classes)
    means, classes, modality = [], [], []
    for name, m in aligner.modalities.items():
        rows = m.prepare(data)
        if m.granularity == "sample":
            index = chosen
            labels = data.labels[chosen]
        else:
            index = np.arange(data.num_classes)
            labels = index
        mu, _ = aligner.encode(name, np.asarray(rows)[index])
        means.append(mu.cpu().numpy())
        classes.append(np.asarray(labels))
        modality += [name] * len(index)
    x = np.concatenate(means).astype(np.float64)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    # as many OpenMP threads as torch uses (--threads): the default spins every core, which on a
    # small shared CPU is several times slower than one thread
    with threadpool_limits(torch.get_num_threads()):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    labels = np.concatenate(classes)
    return LatentMap(xy, labels, np.array(modality), np.array([int(c) in unseen_classes for c in labels]),
                     list(data.class_names), data.name, run.data.synthetic)
