"""Experiment tracking as training callbacks: ``--log tensorboard`` and ``--log mlflow``.

Both follow the training loop's callback interface (``on_train_begin(state)``,
``on_epoch_end(state, logs)``, ``on_train_end(state)``; ``state`` has ``epoch``, ``config`` and
``histories``, ``logs`` one :class:`~mmalign.training.EpochLog` per run trained together) and
record, per training run: the config as parameters, every loss term and loss-family weight per
epoch; then, through :meth:`Tracker.log_metrics` and :meth:`Tracker.log_checkpoint`, the final
metrics and the checkpoint. Each ``on_train_begin`` starts a new tracked run (one per seed in a
benchmark).

- :class:`TensorBoardTracker` writes event files with torch's ``SummaryWriter`` under
  ``<out>/tensorboard/run<N>`` (extra ``mmalign[tensorboard]``).
- :class:`MlflowTracker` logs to ``tracking_uri`` when given, else to a local store in the
  output folder: ``<out>/mlflow.db`` (SQLite) with artifacts in ``<out>/mlartifacts``; MLflow's
  plain-folder store is in maintenance mode and refused by default since MLflow 3 (extra
  ``mmalign[mlflow]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .checkpoint import CONFIG, MODEL, NORMALISERS
from .errors import ConfigError
from .history import HISTORY
from .training import Callback

TRACKERS = ("tensorboard", "mlflow")
#: The files of a checkpoint directory (``Aligner.save``), logged as its artifact.
CHECKPOINT_FILES = (CONFIG, MODEL, NORMALISERS, HISTORY)


def flat_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A (nested) config as ``{"training.epochs": "100", ...}`` (pydantic models and dicts)."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    out: dict[str, str] = {}
    if isinstance(config, Mapping):
        for key, value in config.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    value = json.dumps(config) if isinstance(config, (list, tuple)) else str(config)
    return {prefix[:-1]: value}


def epoch_scalars(log: Any) -> dict[str, float]:
    """One epoch's scalars: ``loss/<term>`` for every term and ``weight/<family>`` for every weight
    (none when the training loop does not record weights)."""
    scalars = {f"loss/{k}": float(v) for k, v in log.terms.items()}
    scalars.update({f"weight/{k}": float(v) for k, v in (getattr(log, "weights", None) or {}).items()})
    scalars["seconds"] = float(log.seconds)
    return scalars


class Tracker(Callback):
    """A training callback that tracks runs: parameters given up front plus the training config
    at the start, then every epoch; subclasses say where it goes."""

    def __init__(self, out: str | Path, params: Mapping[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.params = dict(params or {})
        self.runs = 0

    def _params(self, state: Any) -> dict[str, str]:
        params = flat_params(self.params)
        config = getattr(state, "config", None)
        if config is not None:
            params.update(flat_params(config, "training."))
        return params

    @staticmethod
    def _prefix(index: int, logs: Sequence[Any]) -> str:
        return f"run{index}/" if len(logs) > 1 else ""

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Final metrics of the last tracked run (``S``, ``U``, ``H``, ``top1``, percent)."""
        raise NotImplementedError

    def log_checkpoint(self, path: str | Path) -> None:
        """The checkpoint directory of the last tracked run."""
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """Event files under ``<out>/tensorboard/run<N>``: scalars ``loss/<term>``,
    ``weight/<family>``, ``seconds`` per epoch, ``result/<metric>``, and the config and the
    checkpoint's path as text."""

    def __init__(self, out: str | Path, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(out, params)
        from torch.utils.tensorboard import SummaryWriter  # ImportError without the tensorboard package

        self._writer_type = SummaryWriter
        self.log_dir: Path | None = None
        self._writer = None

    def _open(self):
        if self._writer is None:
            if self.log_dir is None:
                raise ConfigError("no tracked run yet: the tracker logs after training starts")
            self._writer = self._writer_type(log_dir=str(self.log_dir))
        return self._writer

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_train_begin(self, state: Any) -> None:
        self._close()
        self.log_dir = self.out / "tensorboard" / f"run{self.runs}"
        self.runs += 1
        params = self._params(state)
        self._open().add_text("config", "\n".join(f"    {k} = {v}" for k, v in sorted(params.items())), 0)

    def on_epoch_end(self, state: Any, logs: Sequence[Any]) -> None:
        writer = self._open()
        for i, log in enumerate(logs):
            for tag, value in epoch_scalars(log).items():
                writer.add_scalar(self._prefix(i, logs) + tag, value, int(log.epoch))
        writer.flush()

    def on_train_end(self, state: Any) -> None:
        self._close()

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        writer = self._open()
        for name, value in metrics.items():
            writer.add_scalar(f"result/{name}", float(value), 0)
        self._close()

    def log_checkpoint(self, path: str | Path) -> None:
        self._open().add_text("checkpoint", str(Path(path).resolve()), 0)
        self._close()


def mlflow_name(tag: str) -> str:
    """A term name MLflow accepts: ``cross/att->img`` -> ``cross/att_to_img``,
    ``align/att|img`` -> ``align/att_and_img`` (MLflow refuses ``>`` and ``|``)."""
    return tag.replace("->", "_to_").replace("|", "_and_")


class MlflowTracker(Tracker):
    """One MLflow run per training run in experiment ``experiment`` (default ``mmalign``):
    parameters from the config, metrics ``loss/<term>`` (named by :func:`mlflow_name`),
    ``weight/<family>`` and ``seconds`` per epoch (step = epoch), final metrics, and the
    checkpoint as artifacts under ``checkpoint/``."""

    def __init__(self, out: str | Path, params: Mapping[str, Any] | None = None, tracking_uri: str | None = None,
                 experiment: str = "mmalign") -> None:
        super().__init__(out, params)
        from mlflow.tracking import MlflowClient  # ImportError without the mlflow package

        self.out.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri or f"sqlite:///{(self.out / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            location = None if tracking_uri else (self.out / "mlartifacts").resolve().as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        self.run_id: str | None = None

    def _require_run(self) -> str:
        if self.run_id is None:
            raise ConfigError("no tracked run yet: the tracker logs after training starts")
        return self.run_id

    def on_train_begin(self, state: Any) -> None:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=f"run{self.runs}")
        self.runs += 1
        self.run_id = run.info.run_id
        params = [Param(k[:250], v[:6000]) for k, v in sorted(self._params(state).items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def on_epoch_end(self, state: Any, logs: Sequence[Any]) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(mlflow_name(self._prefix(i, logs) + tag), value, stamp, int(log.epoch))
                   for i, log in enumerate(logs) for tag, value in epoch_scalars(log).items()]
        self.client.log_batch(self._require_run(), metrics=metrics)

    def on_train_end(self, state: Any) -> None:
        self.client.set_terminated(self._require_run())

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        run_id = self._require_run()
        for name, value in metrics.items():
            self.client.log_metric(run_id, mlflow_name(f"result/{name}"), float(value))

    def log_checkpoint(self, path: str | Path) -> None:
        """The checkpoint's own files (the folder may also hold this store and other outputs)."""
        run_id = self._require_run()
        for name in CHECKPOINT_FILES:
            if (Path(path) / name).is_file():
                self.client.log_artifact(run_id, str(Path(path) / name), artifact_path="checkpoint")


_EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def make_trackers(kinds: Sequence[str], out: str | Path, tracking_uri: str | None = None,
                  params: Mapping[str, Any] | None = None) -> list[Tracker]:
    """The trackers ``--log`` names (each at most once), writing under ``out``; a
    :class:`ConfigError` naming the extra to install when its package is missing."""
    trackers: list[Tracker] = []
    for kind in dict.fromkeys(kinds):
        if kind not in TRACKERS:
            raise ConfigError(f"--log must be one of {', '.join(TRACKERS)}, got {kind!r}")
        try:
            if kind == "tensorboard":
                trackers.append(TensorBoardTracker(out, params))
            else:
                trackers.append(MlflowTracker(out, params, tracking_uri=tracking_uri))
        except ImportError as exc:
            raise ConfigError(f"--log {kind} needs the {_EXTRAS[kind]} package ({exc.name or exc} is not "
                              f"installed): pip install 'mmalign[{kind}]'") from None
    if tracking_uri and "mlflow" not in kinds:
        raise ConfigError("--tracking-uri is for --log mlflow")
    return trackers
