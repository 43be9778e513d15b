"""The user-facing model: modalities + config -> a trained `AlignedVAE` with its normalisers.



```python
aligner = mmalign.Aligner(["image_features", "attributes"], config={"seed": 0})
aligner.fit(data)
mu, logvar = aligner.encode("image_features", rows)
aligner.save("runs/cub")            # config.json + model.safetensors + normalisers.safetensors
again = mmalign.Aligner.load("runs/cub")
```
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from . import __version__
from .checkpoint import check_state, write_checkpoint
from .config import AlignerConfig, make_config
from .data import AlignmentData
from .model import AlignedVAE
from .errors import CheckpointError, ConfigError
from .records.history import write_history
from .memory import check_model_memory
from .modality import Modality
from .normalise import Normaliser
from .outputs import saved_or_rescued
from .plugins import PluginCatalog, get_catalog
from .recipes import DEFAULT_RECIPE, Recipe, load_recipe
from .resume import STATE_FILE, load_training_state, restore_optimizer, save_training_state
from .schedule import LossSchedule
from .threads import training_threads
from .devices import resolve_device  # noqa: F401 (part of this module's API)
from .latent_space import LatentSpace
from .modality_specs import ModalitySpec, apply_recipe_sizes, build_modality  # noqa: F401
from .training_data import training_data
from .terms import loss_options
from .training import Callback, Checkpointer, EpochLog, TrainingTensors, new_optimizer, train, train_seeds
from .training.adversarial import critic_optimizers
from .training.distributed import current as current_process_group

class Aligner(LatentSpace):
    """Aligned VAEs over ``M >= 2`` modalities (CADA-VAE for M = 2 in ``cada2019`` mode).

    One VAE per modality, trained jointly so that every modality's posterior lands in one shared
    latent space: each modality reconstructs itself, is decoded from every other modality's latent
    (cross-reconstruction) and its posterior is pulled towards the others' (2-Wasserstein
    distribution alignment), with CADA-VAE's warm-up ramps.

    Typical use:

    ```python
    aligner = mmalign.Aligner(["image_features", "attributes"], config={"seed": 0})
    aligner.fit(data)                                   # an AlignmentData
    z = aligner.embed("image_features", rows)           # posterior means, numpy in -> numpy out
    att = aligner.translate("image_features", "attributes", rows)
    idx, scores = aligner.retrieve("attributes", att_rows, "image_features", rows, k=5)
    aligner.save("runs/x"); again = mmalign.Aligner.load("runs/x")
    ```

    Attributes:
        modalities: name -> `Modality`, in the order given.
        config: the validated `AlignerConfig`.
        model: the `AlignedVAE` once fitted or loaded (else None).
        normalisers: name -> the normaliser fitted on the training split.
        dims: name -> input dimension.
        history: one `EpochLog` per trained epoch.
    """

    def __init__(
        self,
        modalities: Sequence[ModalitySpec],
        config: AlignerConfig | dict[str, Any] | None = None,
        recipe: Recipe | str | None = DEFAULT_RECIPE,
        catalog: PluginCatalog | None = None,
    ) -> None:
        """Build the modalities and validate the config; no network exists until `fit`.

        Args:
            modalities: at least two, each a `Modality` instance, a registered
                modality key (``"image_features"``, ``"attributes"``, ``"sentences"``, ``"text"``,
                ``"class_text"`` or a plugin's) or a dict ``{"kind": key, "name": ..., **options}``.
                Names must be unique (default name: the key). A modality reads the array named
                by its ``options.source`` (built-ins default to ``"features"``, ``"attributes"``,
                ``"sentences"``, ``"text"``; a class without a default reads its own name).
            config: an `AlignerConfig` or a dict of overrides; unknown keys are
                errors. Default: the recipe's values (latent size 64, ``cada2019`` mode, 100
                epochs, batch 50, Adam lr 1.5e-4, seed 0, device ``"auto"``).
            recipe: the `Recipe` the defaults come from, or its registry
                name or TOML file (default ``"cada_vae"``; None: no recipe's sizes, config values
                from ``cada_vae``); a ``recipe`` key in a config dict names it instead. Its hidden
                sizes apply to modalities whose ``hidden`` option was not set.
            catalog: the plugin catalog to resolve keys with (default: the process-wide one,
                `get_catalog`).

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
        """The loss-family weight schedule of this config (see `mmalign.schedule`)."""
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
        """Fit each normaliser on the training split and move the normalised data to the device
        (`mmalign.training_data.training_data`)."""
        tensors, normalisers, dims, self.num_classes = training_data(self.modalities, data, split, self.device)
        self.normalisers.update(normalisers)
        self.dims.update(dims)
        return tensors

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
        ``callbacks`` (`mmalign.training.Callback`) see every epoch. Returns the history.

        Inside an initialised ``torch.distributed`` process group of two or more ranks (``torchrun``;
        see `mmalign.training.distributed.init_from_env`) every rank calls ``fit`` alike and
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
        (`mmalign.training.train_seeds`; engine ``auto``). Copy ``s`` equals
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

    @classmethod
    def load(cls, path: str | Path, modalities: Sequence[Modality] = (), device: str | None = None) -> "Aligner":
        """Rebuild from a checkpoint (`mmalign.aligner_load.load_aligner`). ``modalities``
        supplies instances of unregistered (user-code) modality classes, matched by name."""
        from .aligner_load import load_aligner

        return load_aligner(cls, path, modalities, device)

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint directory (atomic per file; ``config.json`` last), with the training
        history in ``history.json``."""
        model = self._require_model()
        write_history(path, self.history)  # before config.json, which write_checkpoint writes last
        return write_checkpoint(path, self.describe(), model.state_dict(), self._normaliser_state())
