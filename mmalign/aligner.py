"""The user-facing model: modalities + config -> a trained :class:`AlignedVAE` with its normalisers.

::

    aligner = mmalign.Aligner(["image_features", "attributes"], config={"seed": 0})
    aligner.fit(data)
    mu, logvar = aligner.encode("image_features", rows)
    aligner.save("runs/cub")            # config.json + model.safetensors + normalisers.safetensors
    again = mmalign.Aligner.load("runs/cub")
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pydantic import ValidationError

from . import __version__
from .checkpoint import MODEL, NORMALISERS, check_finite, check_state, load_tensors, read_config, write_checkpoint
from .config import AlignerConfig, make_config
from .data import AlignmentData
from .model import AlignedVAE
from .errors import CheckpointError, ConfigError, DataError, MmalignError, PluginError
from .records.history import read_history, write_history
from .memory import check_model_memory
from .errors import format_validation_error
from .modality import Modality
from .normalise import Normaliser
from .outputs import saved_or_rescued
from .plugins import PluginCatalog, get_catalog
from .recipes import DEFAULT_RECIPE, Recipe, load_recipe
from .resume import STATE_FILE, load_training_state, restore_optimizer, save_training_state
from .schedule import LossSchedule
from .threads import training_threads
from .mapped import MappedFeatures
from .terms import loss_options
from .training import Callback, Checkpointer, EpochLog, TrainingTensors, new_optimizer, train, train_seeds
from .training.adversarial import critic_optimizers
from .training.tensors import MappedRows
from .training.distributed import current as current_process_group

ModalitySpec = Modality | str | dict


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def build_modality(spec: ModalitySpec, catalog: PluginCatalog) -> Modality:
    """A modality from an instance, a modality key, or ``{"kind": ..., "name": ..., **options}``."""
    if isinstance(spec, Modality):
        spec.check_options()
        return spec
    if isinstance(spec, str):
        return catalog.create(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError(f"modality spec {spec!r} needs a 'kind' (a registered modality key)")
        name = spec.pop("name", None)
        options = spec.pop("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"modality {kind!r}: key 'options' must be a table of options, got {type(options).__name__}")
        return catalog.create(kind, name=name, options={**options, **spec})
    raise ConfigError(f"a modality must be a Modality, a modality key or a dict, got {type(spec).__name__}")


def apply_recipe_sizes(modality: Modality, recipe: Recipe | str | None) -> Modality:
    """The one rule for a modality's network sizes: an option the user set explicitly wins, then
    the recipe's size for the modality's kind (``[model.hidden]``, e.g. CADA's ``image_features =
    [1560, 1660]``), then the plugin's own ``Options`` default. Returns ``modality`` (updated in place)."""
    options = modality.options
    recipe = None if recipe is None else load_recipe(recipe)
    if recipe is not None and "hidden" in type(options).model_fields and "hidden" not in options.model_fields_set:
        hidden = recipe.hidden_for(modality.kind)
        if hidden is not None:
            modality.options = options.model_copy(update={"hidden": hidden})
    extra = recipe.modality_options.get(modality.kind, {}) if recipe is not None else {}
    if extra:  # the recipe's other options for this kind, under the ones the user set
        given = modality.options.model_dump(exclude_unset=True)
        try:
            validated = type(modality.options).model_validate({**modality.options.model_dump(), **extra, **given})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"recipe {recipe.name!r}: modality_options.{modality.kind}",
                                                      exc)) from None
        modality.options = validated
    return modality


class Aligner:
    """Aligned VAEs over ``M >= 2`` modalities (CADA-VAE for M = 2 in ``cada2019`` mode).

    One VAE per modality, trained jointly so that every modality's posterior lands in one shared
    latent space: each modality reconstructs itself, is decoded from every other modality's latent
    (cross-reconstruction) and its posterior is pulled towards the others' (2-Wasserstein
    distribution alignment), with CADA-VAE's warm-up ramps.

    Typical use::

        aligner = mmalign.Aligner(["image_features", "attributes"], config={"seed": 0})
        aligner.fit(data)                                   # an AlignmentData
        z = aligner.embed("image_features", rows)           # posterior means, numpy in -> numpy out
        att = aligner.translate("image_features", "attributes", rows)
        idx, scores = aligner.retrieve("attributes", att_rows, "image_features", rows, k=5)
        aligner.save("runs/x"); again = mmalign.Aligner.load("runs/x")

    Attributes:
        modalities: name -> :class:`~mmalign.Modality`, in the order given.
        config: the validated :class:`~mmalign.AlignerConfig`.
        model: the :class:`~mmalign.AlignedVAE` once fitted or loaded (else None).
        normalisers: name -> the normaliser fitted on the training split.
        dims: name -> input dimension.
        history: one :class:`~mmalign.training.EpochLog` per trained epoch.
    """

    def __init__(
        self,
        modalities: Sequence[ModalitySpec],
        config: AlignerConfig | dict[str, Any] | None = None,
        recipe: Recipe | str | None = DEFAULT_RECIPE,
        catalog: PluginCatalog | None = None,
    ) -> None:
        """Build the modalities and validate the config; no network exists until :meth:`fit`.

        Args:
            modalities: at least two, each a :class:`~mmalign.Modality` instance, a registered
                modality key (``"image_features"``, ``"attributes"``, ``"sentences"``, ``"text"``,
                ``"class_text"`` or a plugin's) or a dict ``{"kind": key, "name": ..., **options}``.
                Names must be unique (default name: the key). A modality reads the array named
                by its ``options.source`` (built-ins default to ``"features"``, ``"attributes"``,
                ``"sentences"``, ``"text"``; a class without a default reads its own name).
            config: an :class:`~mmalign.AlignerConfig` or a dict of overrides; unknown keys are
                errors. Default: the recipe's values (latent size 64, ``cada2019`` mode, 100
                epochs, batch 50, Adam lr 1.5e-4, seed 0, device ``"auto"``).
            recipe: the :class:`~mmalign.recipes.Recipe` the defaults come from, or its registry
                name or TOML file (default ``"cada_vae"``; None: no recipe's sizes, config values
                from ``cada_vae``); a ``recipe`` key in a config dict names it instead. Its hidden
                sizes apply to modalities whose ``hidden`` option was not set.
            catalog: the plugin catalog to resolve keys with (default: the process-wide one,
                :func:`~mmalign.get_catalog`).

        Raises:
            ConfigError: fewer than two modalities, duplicate names, bad config keys or values.
            PluginError: a modality key no installed plugin registers.
        """
        self.catalog = catalog or get_catalog()
        built = [build_modality(spec, self.catalog) for spec in modalities]
        if len(built) < 2:
            raise ConfigError(f"alignment needs at least two modalities, got {len(built)}")
        names = [m.name for m in built]
        if len(set(names)) != len(names):
            raise ConfigError(f"modality names must be unique, got {names}; pass name=... to tell them apart")
        if isinstance(config, dict) and "recipe" in config:
            recipe = config["recipe"]
            config = {k: v for k, v in config.items() if k != "recipe"}
        #: the recipe this aligner was configured from (None: field defaults)
        self.recipe: Recipe | None = None if recipe is None else load_recipe(recipe)
        self.config = make_config(config, self.recipe)
        self.modalities: dict[str, Modality] = {m.name: apply_recipe_sizes(m, self.recipe) for m in built}
        registered = list(self.catalog.losses.values())
        named = set(self.config.training.warmup) | set(self.config.loss_options)
        candidates = [t for t in registered if not t.optional or t.family in named]
        # an unknown loss family fails here, not after data loading; a family never weighed is left out
        self.loss_terms = LossSchedule(candidates, self.config.training.warmup).weighed(candidates)
        self.loss_options = loss_options(self.loss_terms, registered, self.config.loss_options)
        #: the number of training classes (sizes the loss families' modules; set by fit)
        self.num_classes = 0
        # sizes no machine could train are a config error now, not an allocator error in fit()
        # (input dimensions are unknown until the data comes: counted as 1, a lower bound)
        check_model_memory(self.modalities, {}, self.config.latent_size, torch.device("cpu"))
        self.model: AlignedVAE | None = None
        self.normalisers: dict[str, Normaliser] = {}
        self.dims: dict[str, int] = {}
        self.history: list[EpochLog] = []
        #: The run config (data spec) this aligner was trained from, saved with it when set.
        self.run_config: dict[str, Any] | None = None
        #: ``{"world_size", "backend"}`` of the data-parallel run that trained it (None: one process).
        self.distributed: dict[str, Any] | None = None

    def fresh(self, seed: int | None = None) -> "Aligner":
        """An untrained aligner like this one: new instances of the same modalities (same options),
        the same config (``seed`` replaced when given), recipe and catalog."""
        modalities = [type(m)(name=m.name, **m.options.model_dump()) for m in self.modalities.values()]
        config = self.config if seed is None else self.config.model_copy(update={"seed": int(seed)})
        return Aligner(modalities, config, recipe=self.recipe, catalog=self.catalog)

    def schedule(self) -> LossSchedule:
        """The loss-family weight schedule of this config (see :mod:`mmalign.schedule`)."""
        return LossSchedule(self.loss_terms, self.config.training.warmup)

    def warn_short_warmup(self) -> None:
        """Warn when the run ends before a loss family's warm-up starts: its terms never train (a
        CADA run much shorter than 22 epochs scores at chance)."""
        schedule, epochs = self.schedule(), self.config.training.epochs
        never = schedule.never_active(epochs)
        if never:
            starts = ", ".join(f"{f} (weight 0 until epoch {schedule.ramps[f].first_active_epoch()})" for f in never)
            warnings.warn(f"training for {epochs} epoch(s) ends before these loss families start, so they never "
                          f"train: {starts}; use more epochs or scale training.warmup", stacklevel=3)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def build(self, dims: dict[str, int]) -> AlignedVAE:
        """Create the networks (weights from the config's seed, on the CPU, then moved)."""
        self.dims = dict(dims)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            model = AlignedVAE(
                self.modalities, self.dims, self.config.latent_size, self.config.reparameterization,
                self.config.reduction, self.config.pair_weights, self.loss_terms,
                self.config.tuple_scaling, num_classes=self.num_classes, loss_options=self.loss_options,
            )
        self.model = model.to(self.device)
        return self.model

    def training_tensors(self, data: AlignmentData, split: str = "trainval") -> TrainingTensors:
        """Fit each normaliser on the training split and move the normalised data to the device."""
        idx = data.split(split)
        labels = np.asarray(data.labels)[idx]
        train_classes = np.unique(labels)
        device = self.device
        tensors = TrainingTensors(labels=torch.as_tensor(labels, dtype=torch.long, device=device))
        self.num_classes = int(train_classes.size)
        for name, modality in self.modalities.items():
            prepared = modality.prepare(data)
            normaliser = modality.make_normaliser()
            if isinstance(prepared, MappedFeatures):  # left on disk: a streaming fit, rows read per batch
                tensors.sample[name], present = self._mapped_rows(name, prepared, data, modality.source, idx, normaliser)
                if present is not None:
                    tensors.masks[name] = torch.as_tensor(present).to(device)
                self.normalisers[name], self.dims[name] = normaliser, prepared.dim
                continue
            array = torch.as_tensor(prepared)
            if modality.granularity == "sample":
                rows = array[idx]
                if modality.source in data.sample_masks:  # fit on present rows; zero-fill the rest
                    present = torch.as_tensor(np.asarray(data.sample_masks[modality.source], dtype=bool)[idx])
                    normaliser.fit(rows[present])
                    rows = torch.where(present[:, None], rows, torch.zeros_like(rows))
                else:
                    normaliser.fit(rows)
                tensors.sample[name] = normaliser(rows).to(device)
                if modality.source in data.sample_masks:
                    tensors.masks[name] = present.to(device)
            else:
                normaliser.fit(array[train_classes])
                tensors.by_class[name] = normaliser(array).to(device)
            self.normalisers[name] = normaliser
            self.dims[name] = int(array.shape[1])
        return tensors

    def _mapped_rows(self, name: str, source: MappedFeatures, data: AlignmentData, key: str, idx: np.ndarray,
                     normaliser: Normaliser) -> tuple[MappedRows, np.ndarray | None]:
        """Fit ``normaliser`` on the present training rows in one streaming pass (checking they are
        finite) and return the split's rows left on disk, with the presence mask if any."""
        present = np.asarray(data.sample_masks[key], dtype=bool)[idx] if key in data.sample_masks else None
        fitted = idx if present is None else idx[present]

        def checked():
            for start, block in zip(range(0, fitted.size, source.chunk_rows), source.chunks(fitted)):
                if not np.isfinite(block).all():
                    row = int(fitted[start + int(np.argwhere(~np.isfinite(block))[0, 0])])
                    raise DataError(f"{data.name}: modality {name!r} ({key!r}, {source!r}) holds NaN or Inf at row {row}")
                yield torch.from_numpy(block)

        normaliser.fit_chunks(checked())
        return MappedRows(source, idx, normaliser, self.device, present), present

    def override(self, seed: int | None = None, epochs: int | None = None) -> None:
        """Replace the config's seed and/or training epochs (``None``: keep)."""
        updates: dict[str, Any] = {}
        if seed is not None:
            updates["seed"] = int(seed)
        if epochs is not None:
            updates["training"] = self.config.training.model_copy(update={"epochs": int(epochs)})
        if updates:
            self.config = self.config.model_copy(update=updates)

    def fit(
        self,
        data: AlignmentData,
        seed: int | None = None,
        split: str = "trainval",
        progress: bool = True,
        epochs: int | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        callbacks: Sequence[Callback] = (),
    ) -> list[EpochLog]:
        """Train on ``data.splits[split]`` with the config's engine. ``seed`` (default: the config's)
        drives everything; ``epochs`` (default: the config's) overrides the training length.

        With ``checkpoint_dir`` and ``checkpoint_every``, the full training state is saved there
        (atomically) every that many epochs and after the last; ``resume=True`` continues from it.
        ``callbacks`` (:class:`mmalign.training.Callback`) see every epoch. Returns the history.

        Inside an initialised ``torch.distributed`` process group of two or more ranks (``torchrun``;
        see :func:`mmalign.training.distributed.init_from_env`) every rank calls ``fit`` alike and
        trains its share of each global batch with DDP; the result is the single-process one with
        the same ``batch_size``, only rank 0 writes checkpoints and shows progress.
        """
        self.override(seed=seed, epochs=epochs)
        group = current_process_group()
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        data.validate()
        tensors = self.training_tensors(data, split)
        model = self.build(self.dims)
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        optimizer = new_optimizer(model.vae_parameters(), self.config.training, self.device)
        critics = critic_optimizers(model)
        self.distributed = None  # not part of the fingerprint: a run resumes with another world size
        fingerprint = {"describe": self.describe(), "split": split, "data": data.name}
        self.distributed = group.describe() if group is not None else None
        start, prior = 0, []
        if resume and checkpoint_dir is not None and (Path(checkpoint_dir) / STATE_FILE).exists():
            start, prior = self._restore(Path(checkpoint_dir), fingerprint, optimizer, generator, critics)
        extra: list[Callback] = []
        if checkpoint_dir is not None and checkpoint_every is not None and (group is None or group.primary):
            def save(epochs_done: int, history: list[EpochLog]) -> None:
                def write(folder: Path) -> Path:
                    return save_training_state(folder, model, optimizer, generator, self._normaliser_state(),
                                               epochs_done, history, fingerprint, self.distributed, critics)

                # a state that cannot be written (a full disk) keeps the previous one there and the
                # in-progress model, optimizer and generator in a rescue folder, named in the error
                saved_or_rescued(Path(checkpoint_dir), "training-state", write,
                                 f"the training state after epoch {epochs_done} (copy {STATE_FILE} into "
                                 f"{checkpoint_dir} and train again with --resume)")

            extra.append(Checkpointer(checkpoint_every, self.config.training.epochs, save, prior))
        self.warn_short_warmup()  # once everything is checked: a failing command prints its error alone
        # torch's global generator, seeded too: only networks that draw in their forward (input dropout) use it
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed + start)
            history = train(model, tensors, self.config.training, generator, optimizer, start_epoch=start,
                            progress=progress and (group is None or group.primary), callbacks=[*extra, *callbacks],
                            distributed=group, num_threads=training_threads(), critics=critics)
        self.history = prior + history
        return self.history

    def fit_seeds(self, data: AlignmentData, seeds: Sequence[int], split: str = "trainval", progress: bool = True,
                  epochs: int | None = None, callbacks: Sequence[Callback] = ()) -> list["Aligner"]:
        """One fitted copy of this aligner per seed, all trained together as one stacked model
        (:func:`mmalign.training.train_seeds`; engine ``auto``). Copy ``s`` equals
        ``fit(data, seed=seeds[s])`` up to floating-point rounding. This aligner itself is left
        untrained except for its fitted normalisers."""
        if len(seeds) == 0:
            raise ConfigError("fit_seeds needs at least one seed")
        if current_process_group() is not None:
            raise ConfigError("fit_seeds trains several seeds in one process; under torchrun train one run with fit()")
        self.override(epochs=epochs)
        if any(t.build is not None for t in self.loss_terms):  # such modules are not stacked: one run at a time
            fitted = []
            for seed in seeds:
                one = copy.copy(self)
                one.config = self.config.model_copy(update={"seed": int(seed)})
                one.normalisers, one.dims, one.model, one.history = {}, {}, None, []
                one.fit(data, split=split, progress=progress, callbacks=callbacks)
                fitted.append(one)
            return fitted
        self.warn_short_warmup()
        data.validate()
        tensors = self.training_tensors(data, split)  # the normalisers do not depend on the seed
        fitted: list[Aligner] = []
        for seed in seeds:
            one = copy.copy(self)
            one.config = self.config.model_copy(update={"seed": int(seed)})
            one.normalisers, one.dims, one.model, one.history = dict(self.normalisers), dict(self.dims), None, []
            one.build(one.dims)
            fitted.append(one)
        generators = [torch.Generator(device=one.device).manual_seed(one.config.seed) for one in fitted]
        histories = train_seeds([one.model for one in fitted], tensors, self.config.training, generators,
                                progress=progress, callbacks=callbacks, num_threads=training_threads())
        for one, history in zip(fitted, histories):
            one.history = history
        return fitted

    def _normaliser_state(self) -> dict[str, torch.Tensor]:
        return {f"{n}.{k}": v for n, z in self.normalisers.items() for k, v in z.state().items()}

    def _restore(self, folder: Path, fingerprint: dict[str, Any], optimizer: torch.optim.Optimizer,
                 generator: torch.Generator,
                 critics: dict[str, torch.optim.Optimizer] | None = None) -> tuple[int, list[EpochLog]]:
        """Load a saved training state into the fresh model, optimizer and generator."""
        state = load_training_state(folder, generator)
        where = folder / STATE_FILE
        if state["config"] != json.loads(json.dumps(fingerprint, sort_keys=True)):
            raise CheckpointError(f"{where}: saved with a different config or data; use a new output folder or drop --resume")
        norm = self._normaliser_state()
        if set(norm) != set(state["normalisers"]) or any(not torch.equal(norm[k], state["normalisers"][k]) for k in norm):
            raise CheckpointError(f"{where}: the training data changed since this state was saved")
        model = self._require_model()
        check_state(where, model.state_dict(), state["model"])
        model.load_state_dict(state["model"], strict=True)
        restore_optimizer(optimizer, state["optimizer"], state["optimizer_scalars"])
        critics = critics or {}
        if set(critics) != set(state["critics"]):
            raise CheckpointError(f"{where}: field 'critics' holds {sorted(state['critics'])}, this model's "
                                  f"adversarial loss families are {sorted(critics)}")
        for family, critic in critics.items():
            restore_optimizer(critic, *state["critics"][family])
        generator.set_state(state["generator"])
        return state["epochs_done"], state["history"]

    def _require_model(self) -> AlignedVAE:
        if self.model is None:
            raise ConfigError("the aligner has not been trained or loaded yet; call fit() or Aligner.load()")
        return self.model

    @torch.no_grad()
    def encode(self, name: str | Sequence[str], rows: Any, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)`` of raw rows of modality ``name`` (normalised as in training).

        ``rows`` is ``(n, dim)``, numpy or torch. Returns two **torch** tensors ``(n, latent_size)``
        on the aligner's device; :meth:`embed` returns the means in the type given.

        A subset of modalities encodes too: ``name`` a list or tuple of modality names and ``rows``
        a mapping name -> rows (the same ``n`` each) give the product of their posteriors with the
        prior ``N(0, I)`` (:func:`mmalign.posterior.product_of_experts`, MVAE's joint posterior)."""
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

    def sample_latents(self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised samples in the configured mode."""
        from .losses import reparameterize

        return reparameterize(mu, logvar, self.config.reparameterization, generator)

    # -- checkpoints ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The checkpoint's ``config.json`` body."""
        modalities = []
        for name, m in self.modalities.items():
            entry = self.catalog.entries.get(m.kind)
            registered = entry is not None and entry.factory is type(m)
            modalities.append({
                **m.describe(), "dim": self.dims.get(name),
                "plugin": entry.plugin if registered else None,
                "plugin_version": entry.plugin_version if registered else None,
                "class": f"{type(m).__module__}.{type(m).__qualname__}",
            })
        body = {"mmalign_version": __version__, "aligner": self.config.model_dump(mode="json"), "modalities": modalities}
        if self.recipe is not None:  # the whole recipe: eval classifies with it, wherever it came from
            body["recipe"] = self.recipe.model_dump(mode="json")
        if any(t.build is not None for t in self.loss_terms):
            body["num_classes"] = self.num_classes
        if self.run_config is not None:
            body["run"] = self.run_config
        if self.distributed is not None:
            body["distributed"] = self.distributed
        return body

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint directory (atomic per file; ``config.json`` last), with the training
        history in ``history.json``."""
        model = self._require_model()
        write_history(path, self.history)  # before config.json, which write_checkpoint writes last
        return write_checkpoint(path, self.describe(), model.state_dict(), self._normaliser_state())

    @classmethod
    def load(cls, path: str | Path, modalities: Sequence[Modality] = (), device: str | None = None) -> "Aligner":
        """Rebuild from a checkpoint. ``modalities`` supplies instances of unregistered (user-code)
        modality classes, matched by name."""
        path = Path(path)
        cfg = read_config(path)
        catalog = get_catalog()
        given = {m.name: m for m in modalities}
        specs: list[Modality] = []
        for entry in cfg["modalities"]:
            try:
                kind, name, options = entry["kind"], entry["name"], entry["options"]
                if name in given:
                    specs.append(type(given[name])(name=name, **options))
                else:
                    specs.append(catalog.create(kind, name=name, options=options))
            except PluginError:
                raise CheckpointError(
                    f"{path}: modality {entry.get('name')!r} needs the modality key {entry.get('kind')!r} "
                    f"(plugin {entry.get('plugin')!r}), which no installed plugin registers"
                ) from None
            except (KeyError, TypeError):
                raise CheckpointError(f"{path / 'config.json'}: malformed modality entry {entry!r}") from None
            except ConfigError as exc:
                raise CheckpointError(f"{path / 'config.json'}: {exc}") from None
        aligner_cfg = dict(cfg["aligner"])
        if device is not None:
            aligner_cfg["device"] = device
        try:
            config = AlignerConfig.model_validate(aligner_cfg)
        except ValidationError as exc:
            raise CheckpointError(format_validation_error(f"{path / 'config.json'}: aligner", exc)) from None
        recipe = None
        if "recipe" in cfg:
            try:
                recipe = Recipe.model_validate(cfg["recipe"])
            except ValidationError as exc:
                raise CheckpointError(format_validation_error(f"{path / 'config.json'}: recipe", exc)) from None
        elif config.recipe is not None:  # checkpoints before the recipe was saved: the registry's
            recipe = config.recipe
        try:
            aligner = cls(specs, config=config, recipe=recipe, catalog=catalog)
        except MmalignError as exc:
            raise CheckpointError(f"{path / 'config.json'}: {exc}") from None
        dims = {e["name"]: e.get("dim") for e in cfg["modalities"]}
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims.values()):
            raise CheckpointError(f"{path / 'config.json'}: every modality needs a positive integer 'dim', got {dims}")
        check_model_memory(aligner.modalities, dims, config.latent_size, aligner.device, where=str(path / "config.json"))
        classes = cfg.get("num_classes", 0)
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
            raise CheckpointError(f"{path / 'config.json'}: key 'num_classes' must be a non-negative integer, got {classes!r}")
        aligner.num_classes = classes
        model = aligner.build(dims)
        state = load_tensors(path / MODEL)
        check_state(path / MODEL, model.state_dict(), state)
        model.load_state_dict(state, strict=True)
        model.eval()
        norm_state = load_tensors(path / NORMALISERS)
        check_finite(path / NORMALISERS, norm_state)
        for name, modality in aligner.modalities.items():
            normaliser = modality.make_normaliser()
            prefix = f"{name}."
            part = {k[len(prefix):]: v for k, v in norm_state.items() if k.startswith(prefix)}
            for key, tensor in part.items():
                if tuple(tensor.shape) != (aligner.dims[name],):
                    raise CheckpointError(f"{path / NORMALISERS}: tensor {prefix + key!r} has shape "
                                          f"{tuple(tensor.shape)}, expected ({aligner.dims[name]},)")
            try:
                normaliser.load_state(part)
            except CheckpointError as exc:
                raise CheckpointError(f"{path / NORMALISERS}: modality {name!r}: {exc}") from None
            aligner.normalisers[name] = normaliser
        aligner.history = read_history(path)
        return aligner

    # -- the aligned latent space --------------------------------------------------------------

    def embed(self, name: str | Sequence[str], x: Any, batch_size: int = 8192) -> np.ndarray | torch.Tensor:
        """Posterior means of raw rows ``x`` ``(n, dim)`` of modality ``name``: ``(n, latent_size)``.

        numpy in, numpy (float32) out; torch in, torch out on ``x``'s device. Rows of every
        modality land in the same latent space, so embeddings of different modalities compare.
        A subset embeds as its joint posterior's mean: ``name`` a list of names and ``x`` a dict
        name -> rows (see :meth:`encode`)."""
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
        is embedded as its joint posterior (:meth:`encode`).

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
