"""``evaluate``: the CADA-VAE latent-classifier protocol on a trained aligner, one seed, one result.

One seed drives everything random in the protocol, through independent derived streams: the
few-shot split, the noise of the training latents, the classifier's init and shuffles.
"""

from __future__ import annotations

import time
from typing import Any

from ..data import AlignmentData
from ..errors import ConfigError
from ..registry import load_recipe
from .classifier import ClassifierHparams
from .latents import CHUNK
from .policies import POLICIES, best_epoch, fixed_epochs, select_epochs
from .protocol import SETTINGS, build_task, device_of, run_classifier, selection_metric, synchronize


def evaluate(
    aligner: Any,
    data: AlignmentData,
    setting: str = "gzsl",
    shots: int = 0,
    image: str = "img",
    side: str = "att",
    epochs: int | None = None,
    policy: str = "fixed",
    seed: int = 0,
    dataset_name: str | None = None,
    fast: bool = True,
    *,
    val_aligner: Any | None = None,
    val_data: AlignmentData | None = None,
    max_epochs: int = 100,
    recipe: str = "cada_vae",
    chunk: int = CHUNK,
) -> dict[str, Any]:
    """Score ``aligner`` on ``data`` with the latent-classifier protocol.

    Args:
        aligner: a trained :class:`~mmalign.Aligner` (or anything with ``modalities``, ``device``,
            ``encode(name, rows)`` and ``sample_latents(mu, logvar, generator)``).
        data: the data set; ``trainval`` gives the seen images, ``test_seen``/``test_unseen`` the
            test images.
        setting: ``"gzsl"`` (S, U, H over all classes) or ``"zsl"`` (top-1 over the unseen classes;
            with ``shots > 0`` this is the FSL setting).
        shots: unseen images per class moved from the test set to the classifier's training set.
        image, side: names of the per-sample image modality and the per-class side-information
            modality (default ``"img"``, ``"att"``; if absent, the aligner's only modality of that
            granularity is used).
        epochs: classifier epochs for ``policy="manual"``, or already chosen by
            :func:`~mmalign.protocols.select_epochs` for ``policy="val"``.
        policy: ``"fixed"`` (the released code's table for ``dataset_name``), ``"val"`` (chosen on
            validation classes: pass ``val_aligner`` and ``val_data``, see
            :mod:`mmalign.protocols.policies`, or ``epochs``), ``"test"`` (best epoch in
            ``1..max_epochs`` on the test data itself; optimistic, recorded as such) or
            ``"manual"``.
        seed: drives the few-shot split, the latent noise and the classifier.
        dataset_name: key of the fixed-epoch table (default ``data.name``).
        fast: the fast classifier (default) or the plain reference loop; same numbers.
        val_aligner, val_data: for ``policy="val"``: an aligner trained on ``val_data``'s
            ``trainval`` split, ``val_data = validation_view(data, seed)``.
        max_epochs: the range searched by ``"val"`` and ``"test"``.
        recipe: the recipe holding the latent counts, classifier settings and the epoch table.
        chunk: rows per encoder call.

    Returns:
        A dict: ``S``, ``U``, ``H`` (GZSL) or ``top1`` (ZSL), in percent; ``dataset``, ``setting``,
        ``shots``, ``seed``, ``policy``, ``epochs``, ``image``, ``side``, ``num_classes``,
        ``train_latents``, ``classifier`` (``"fast"``/``"reference"``), ``reparameterization`` (when
        the aligner has a config), ``selection`` (``"val"``/``"test"``: metric, score, max_epochs)
        and ``seconds`` (wall time of ``sampling``, ``classifier`` and, if run, ``selection``).
    """
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if policy not in POLICIES:
        raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")
    shots = int(shots)
    dataset = dataset_name or data.name
    rec = load_recipe(recipe)
    hparams = ClassifierHparams.from_recipe(rec)
    seconds: dict[str, float] = {}
    selection: dict[str, Any] | None = None

    if policy == "fixed":
        if epochs is not None:
            raise ConfigError("policy='fixed' takes its epochs from the recipe's table; use policy='manual' to pass epochs")
        epochs = fixed_epochs(dataset, setting, shots, recipe)
    elif policy == "manual":
        if epochs is None:
            raise ConfigError("policy='manual' needs epochs=N")
    elif policy == "val" and epochs is None:
        if val_aligner is None or val_data is None:
            raise ConfigError(
                "policy='val' needs val_aligner and val_data (an aligner trained on "
                "validation_view(data, seed)'s trainval split, and that view), or epochs chosen by select_epochs"
            )
        chosen = select_epochs(val_aligner, val_data, setting, shots, max_epochs=max_epochs, seed=seed,
                               image=image, side=side, fast=fast, recipe=recipe, chunk=chunk)
        epochs, seconds["selection"] = chosen.epochs, chosen.seconds
        selection = {"on": "val", "metric": chosen.metric, "score": chosen.score, "max_epochs": max_epochs,
                     "data": val_data.name}
    elif policy == "val":
        selection = {"on": "val", "metric": selection_metric(setting), "score": None, "max_epochs": None,
                     "data": None}
    if policy != "test" and (epochs is None or int(epochs) < 1):
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")

    device = device_of(aligner)
    start = time.perf_counter()
    task = build_task(aligner, data, setting, shots, seed, recipe=rec, image=image, side=side, chunk=chunk)
    synchronize(device)
    seconds["sampling"] = time.perf_counter() - start

    if policy == "test":
        run = run_classifier(task, max_epochs, seed, hparams=hparams, fast=fast, track=True)
        metric = selection_metric(setting)
        epochs = best_epoch(run.history, metric)
        scores = run.history[epochs - 1]
        selection = {"on": "test", "metric": metric, "score": scores[metric], "max_epochs": max_epochs,
                     "warning": "epochs selected on the test data; optimistic"}
    else:
        run = run_classifier(task, int(epochs), seed, hparams=hparams, fast=fast)
        scores = run.final
    seconds["classifier"] = run.seconds

    config = getattr(aligner, "config", None)
    result: dict[str, Any] = {
        "dataset": dataset, "setting": setting, "shots": shots, "seed": int(seed), "policy": policy,
        "epochs": int(epochs), **scores, "image": task.image, "side": task.side,
        "num_classes": task.num_classes, "train_latents": len(task.train),
        "classifier": "fast" if fast else "reference",
    }
    if config is not None and hasattr(config, "reparameterization"):
        result["reparameterization"] = config.reparameterization
    if selection is not None:
        result["selection"] = selection
    result["seconds"] = seconds
    return result
