"""Experiment tracking as training callbacks: ``--log tensorboard`` and ``--log mlflow``.

Both follow the training loop's callback interface (``on_train_begin(state)``,
``on_epoch_end(state, logs)``, ``on_train_end(state)``; ``state`` has ``epoch``, ``config`` and
``histories``, ``logs`` one `EpochLog` per run trained together) and
record, per training run: the config as parameters, every loss term and loss-family weight per
epoch; then, through `Tracker.log_metrics` and `Tracker.log_checkpoint`, the final
metrics and the checkpoint. Each ``on_train_begin`` starts a new tracked run (one per seed in a
benchmark).

- `TensorBoardTracker` writes event files with torch's ``SummaryWriter`` under
  ``<out>/tensorboard/run<N>`` (extra ``mmalign[tensorboard]``).
- `MlflowTracker` logs to ``tracking_uri`` when given, else to a local store in the
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
from .records.history import HISTORY
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
    parameters from the config, metrics ``loss/<term>`` (named by `mlflow_name`),
    ``weight/<family>`` and ``seconds`` per epoch (step = epoch), final metrics, and the
    checkpoint as artifacts under ``checkpoint/``."""

    def __init__(self, out: str | Path, params: Mapping[str, Any] | None = None, tracking_uri: str | None = None,
                 experiment: str = "mmalign") -> None:
        super().__init__(out, params)
        import os

        # a server that answers but fails: a few quick retries, not MLflow's minutes of back-off
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
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
#: Modules each tracker imports (checked before anything trains).
_MODULES = {"tensorboard": ("tensorboard", "torch.utils.tensorboard"), "mlflow": ("mlflow",)}
#: Tracking-URI schemes MLflow stores understand.
MLFLOW_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
#: Seconds to wait for an MLflow tracking server to accept a connection (default 10).
SERVER_TIMEOUT = 10.0
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _missing_extra(kind: str) -> ConfigError | None:
    import importlib.util

    for module in _MODULES[kind]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return ConfigError(f"--log {kind} needs the {_EXTRAS[kind]} package ({module} is not installed): "
                               f"pip install 'mmalign[{kind}]'")
    return None


def _check_store_file(path: Path, what: str) -> None:
    """An SQLite store ``path`` that exists must be an SQLite database; its folder must be creatable."""
    from .outputs import check_output_dir

    if path.exists():
        try:
            with open(path, "rb") as fh:
                ours = path.is_file() and fh.read(16) == _SQLITE_MAGIC
        except OSError:
            ours = False
        if not ours:
            raise ConfigError(f"{what} {path}: exists and is not an SQLite database (MLflow's store); move it "
                              "away or choose another place")
    check_output_dir(path.parent, what)


def _check_server(uri: str, host: str | None, port: int | None) -> None:
    import socket

    if not host:
        raise ConfigError(f"--tracking-uri {uri}: no host; expected e.g. http://127.0.0.1:5000")
    try:
        socket.create_connection((host, port), timeout=SERVER_TIMEOUT).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"--tracking-uri {uri}: no tracking server answers at {host}:{port} ({reason} within "
                          f"{SERVER_TIMEOUT:g} s); start it ('mlflow server') or check the address") from None


def check_tracking(kinds: Sequence[str], out: str | Path, tracking_uri: str | None = None) -> None:
    """Everything about ``--log`` and ``--tracking-uri`` that can go wrong, checked before any data is
    read or anything trains, writing nothing: the tracker names and their packages; the TensorBoard
    folder ``<out>/tensorboard``; the MLflow store (the local ``<out>/mlflow.db`` and
    ``<out>/mlartifacts``, a file or ``sqlite`` URI's place, an ``http(s)`` server that answers, a
    known scheme). Raises `ConfigError` (or `OutputError`) in one line."""
    from urllib.parse import urlparse

    from .outputs import check_output_dir

    out = Path(out)
    for kind in dict.fromkeys(kinds):
        if kind not in TRACKERS:
            raise ConfigError(f"--log must be one of {', '.join(TRACKERS)}, got {kind!r}")
        missing = _missing_extra(kind)
        if missing is not None:
            raise missing
    if tracking_uri is not None and "mlflow" not in kinds:
        raise ConfigError("--tracking-uri is for --log mlflow")
    if "tensorboard" in kinds:
        check_output_dir(out / "tensorboard", "--log tensorboard folder")
    if "mlflow" not in kinds:
        return
    if not tracking_uri:
        _check_store_file(out / "mlflow.db", "--log mlflow store")
        check_output_dir(out / "mlartifacts", "--log mlflow artifacts folder")
        return
    parsed = urlparse(tracking_uri)
    scheme = parsed.scheme.lower()
    if len(scheme) == 1 or not scheme:  # a plain path (a Windows drive letter is no scheme)
        scheme = "file"
    if scheme.split("+")[0] not in MLFLOW_SCHEMES:
        raise ConfigError(f"--tracking-uri {tracking_uri}: unknown scheme {parsed.scheme!r}; expected one of "
                          f"{', '.join(s + ':' for s in MLFLOW_SCHEMES)} (e.g. sqlite:///runs/mlflow.db)")
    if scheme == "file":
        import os

        folder = Path(parsed.path if parsed.scheme else tracking_uri)
        check_output_dir(folder, "--tracking-uri")
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise ConfigError(f"--tracking-uri {tracking_uri}: MLflow refuses a plain-folder store (maintenance "
                              "mode since MLflow 3); use sqlite:///PATH/mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true")
    elif scheme == "sqlite":
        if not tracking_uri.lower().startswith("sqlite:///") or parsed.path in ("", "/"):
            raise ConfigError(f"--tracking-uri {tracking_uri}: expected sqlite:///PATH (three slashes, then the "
                              "database file)")
        if parsed.path != "/:memory:":
            _check_store_file(Path(tracking_uri[len("sqlite:///"):]), "--tracking-uri")
    elif scheme in ("http", "https"):
        try:
            port = parsed.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"--tracking-uri {tracking_uri}: the port is not a number from 1 to 65535") from None
        _check_server(tracking_uri, parsed.hostname, port)


def make_trackers(kinds: Sequence[str], out: str | Path, tracking_uri: str | None = None,
                  params: Mapping[str, Any] | None = None) -> list[Tracker]:
    """The trackers ``--log`` names (each at most once), writing under ``out``, after
    `check_tracking`; a store that refuses to open is a `ConfigError` in one line."""
    check_tracking(kinds, out, tracking_uri)
    trackers: list[Tracker] = []
    for kind in dict.fromkeys(kinds):
        try:
            if kind == "tensorboard":
                trackers.append(TensorBoardTracker(out, params))
            else:
                trackers.append(MlflowTracker(out, params, tracking_uri=tracking_uri))
        except ImportError as exc:
            raise ConfigError(f"--log {kind} needs the {_EXTRAS[kind]} package ({exc.name or exc} is not "
                              f"installed): pip install 'mmalign[{kind}]'") from None
        except ConfigError:
            raise
        except Exception as exc:  # the tracking library's own errors (a store it cannot open)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            where = tracking_uri or str(out)
            raise ConfigError(f"--log {kind}: cannot open the tracking store at {where}: {type(exc).__name__}: "
                              f"{first}") from None
    return trackers
