"""``evaluate``: the CADA-VAE latent-classifier protocol on a trained aligner, one seed, one result.

One seed drives everything random in the protocol, through independent derived streams: the
few-shot split, the noise of the training latents, the classifier's init and shuffles.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..data import AlignmentData
from ..errors import ConfigError
from ..recipes import DEFAULT_RECIPE, Recipe, load_recipe
from .breakdown import class_breakdown
from .classifier import ClassifierHparams, adam_kernel
from .latents import CHUNK
from .policies import EpochPolicy, FixedEpochs, ManualEpochs, make_policy
from .validation import best_epoch, select_epochs, validation_view
from .protocol import SETTINGS, build_task, device_of, run_classifier, selection_metric, synchronize, classify_test_images


def evaluate(
    aligner: Any,
    data: AlignmentData,
    setting: str = "gzsl",
    shots: int = 0,
    image: str = "img",
    side: str = "att",
    epochs: int | None = None,
    policy: EpochPolicy | str = "fixed",
    seed: int = 0,
    dataset_name: str | None = None,
    reference: bool = False,
    *,
    selection_aligner: Any | None = None,
    selection_data: AlignmentData | None = None,
    max_epochs: int = 100,
    recipe: Recipe | str = DEFAULT_RECIPE,
    adam: str = "auto",
    chunk: int = CHUNK,
) -> dict[str, Any]:
    """Score ``aligner`` on ``data`` with the latent-classifier protocol.

    Args:
        aligner: a trained `Aligner` (or anything with ``modalities``, ``device``,
            ``encode(name, rows)`` and ``sample_latents(mu, logvar, generator)``).
        data: the data set; ``trainval`` gives the seen images, ``test_seen``/``test_unseen`` the
            test images.
        setting: ``"gzsl"`` (S, U, H over all classes) or ``"zsl"`` (top-1 over the unseen classes;
            with ``shots > 0`` this is the FSL setting).
        shots: unseen images per class moved from the test set to the classifier's training set.
        image: name of the per-sample image modality (default ``"img"``; if absent, the
            aligner's only per-sample modality).
        side: name of the per-class side-information modality (default ``"att"``; if absent,
            the aligner's only per-class modality).
        epochs: classifier epochs for ``policy="manual"``, or already chosen by
            `select_epochs` for ``policy="val"``.
        policy: an `EpochPolicy` or its name: ``"fixed"`` (the
            recipe's table for ``dataset_name``), ``"val"`` (chosen on validation classes with
            ``selection_aligner``, see `mmalign.protocols.policies`), ``"test"`` (best epoch in
            ``1..max_epochs`` on the test data itself; optimistic, recorded as such) or
            ``"manual"`` (``epochs``).
        seed: drives the few-shot split, the latent noise and the classifier.
        dataset_name: key of the fixed-epoch table (default: ``data.meta["like"]``, which
            `synthetic_like` sets to the data set it imitates, else ``data.name``).
        reference: the plain reference loop instead of the resident one (default); same numbers.
        selection_aligner: for ``policy="val"``: an aligner trained on the ``trainval`` split of
            ``selection_data`` only (``selection_aligner.fit(validation_view(data, seed))``).
        selection_data: the validation data (default ``validation_view(data, seed)``; pass the view
            the selection aligner was trained on if it was built with other arguments).
        max_epochs: the range searched by ``"val"`` and ``"test"``.
        recipe: the `Recipe` (or its name or file) holding the latent
            counts, classifier settings and the epoch table: the one the aligner was trained
            with (default ``cada_vae``).
        adam: the classifier's Adam kernel, ``"auto"`` (fused where available), ``"fused"`` or
            ``"single_tensor"`` (see `ClassifierHparams`).
        chunk: rows per encoder call.

    Returns:
        A dict: ``S``, ``U``, ``H`` (GZSL) or ``top1`` (ZSL), in percent; ``dataset``, ``setting``,
        ``shots``, ``seed``, ``policy``, ``classifier_epochs`` (also as ``epochs``, the name of the
        argument), ``selected_on`` (``"table"``,
        ``"val"``, ``"test"`` or ``"given"``), ``image``, ``side``, ``num_classes``,
        ``train_latents``, ``classifier`` (``"resident"``/``"reference"``), ``adam`` (the kernel used),
        ``reparameterization`` (when the aligner has a config), ``selection`` (``"val"``/``"test"``:
        metric, score, max_epochs, data), ``per_class`` and ``confusion`` (see
        `class_breakdown`) and ``seconds`` (wall time of ``sampling``, ``classifier``
        and, if run, ``selection``).
    """
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {SETTINGS}, got {setting!r}")
    policy = make_policy(policy, epochs if policy == "manual" else None)  # val may come with epochs chosen
    shots = int(shots)
    dataset = dataset_name or data.name
    table_key = dataset_name or data.meta.get("like") or data.name  # synthetic data knows what it imitates
    rec = load_recipe(recipe)
    hparams = replace(ClassifierHparams.from_recipe(rec), adam=adam)
    seconds: dict[str, float] = {}
    selection: dict[str, Any] | None = None

    if isinstance(policy, FixedEpochs):
        if epochs is not None:
            raise ConfigError("policy='fixed' takes its epochs from the recipe's table; use policy='manual' to pass epochs")
        epochs = policy.epochs(rec, table_key, setting, shots)
    elif isinstance(policy, ManualEpochs):
        epochs = policy.given_epochs()
    elif policy.needs_selection_model and epochs is None:
        if selection_aligner is None:
            raise ConfigError(
                "policy='val' needs selection_aligner: an aligner trained on validation_view(data, seed) "
                "(the train classes only), or epochs already chosen by select_epochs"
            )
        if selection_data is None:
            selection_data = validation_view(data, seed=seed)
        chosen = select_epochs(selection_aligner, selection_data, setting, shots, max_epochs=max_epochs, seed=seed,
                               image=image, side=side, reference=reference, recipe=rec, adam=adam, chunk=chunk)
        epochs, seconds["selection"] = chosen.epochs, chosen.seconds
        selection = {"on": "val", "metric": chosen.metric, "score": chosen.score, "max_epochs": max_epochs,
                     "data": selection_data.name}
    elif policy.needs_selection_model:
        selection = {"on": "val", "metric": selection_metric(setting), "score": None, "max_epochs": None,
                     "data": "chosen by the caller"}
    if not policy.selects_on_test and (epochs is None or int(epochs) < 1):
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")

    device = device_of(aligner)
    start = time.perf_counter()
    task = build_task(aligner, data, setting, shots, seed, recipe=rec, image=image, side=side, chunk=chunk)
    synchronize(device)
    seconds["sampling"] = time.perf_counter() - start

    if policy.selects_on_test:
        run = run_classifier(task, max_epochs, seed, hparams=hparams, reference=reference, track=True)
        metric = selection_metric(setting)
        epochs = best_epoch(run.history, metric)
        scores = run.history[epochs - 1]
        run.predictions = classify_test_images(task, *run.snapshots[epochs - 1])  # the selected epoch's classifier
        selection = {"on": "test", "metric": metric, "score": scores[metric], "max_epochs": max_epochs,
                     "warning": "epochs selected on the test data; optimistic"}
    else:
        run = run_classifier(task, int(epochs), seed, hparams=hparams, reference=reference)
        scores = run.final
    seconds["classifier"] = run.seconds

    config = getattr(aligner, "config", None)
    result: dict[str, Any] = {
        "dataset": dataset, "setting": setting, "shots": shots, "seed": int(seed), "policy": policy.name,
        "classifier_epochs": int(epochs), "epochs": int(epochs), "selected_on": policy.selected_on, **scores,
        "image": task.image, "side": task.side, "num_classes": task.num_classes, "train_latents": len(task.train),
        "classifier": "reference" if reference else "resident", "adam": adam_kernel(hparams, device),
    }
    if config is not None and hasattr(config, "reparameterization"):
        result["reparameterization"] = config.reparameterization
    if selection is not None:
        result["selection"] = selection
    result.update(class_breakdown(task, run.predictions, data.class_names))
    result["seconds"] = seconds
    return result
