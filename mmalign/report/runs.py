"""What ``mmalign report`` reads from each RUN_DIR: its result records (any schema version), the
training history, and the checkpoints whose latent space can be drawn."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG, MODEL
from ..errors import ConfigError
from ..records.history import history_rows, read_history
from ..records.files import load_records
from ..records.schema import ResultRecord

RESULTS = "results.json"


#: the fields that tell one trained model from another (not how it was evaluated, nor the seed)
TRAINING_FIELDS = ("dataset", "synthetic", "side_info", "method", "modalities", "reparameterization", "epochs_vae",
                   "engine", "precision", "overrides")


@dataclass
class Training:
    """One trained model's loss history, with what it was: `label` (e.g. `CUB aligner img+att, seed 0,
    100 epochs`) says which data, modalities and seed."""

    label: str
    history: list[dict[str, Any]]


@dataclass
class RunDir:
    """One RUN_DIR: ``records`` from ``results.json``; ``history`` (one dict per epoch) from the
    checkpoint's ``history.json`` or else the first record that has one; ``checkpoints``: the
    folder itself when it is a checkpoint, and ``models/<config>/seed<N>`` of ``mmalign benchmark --save-models``."""

    path: Path
    name: str
    records: list[ResultRecord] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)

    @property
    def is_cub_text(self) -> bool:
        return any(r.command == "cub-text" for r in self.records)

    def trainings(self) -> list[Training]:
        """The loss histories worth a figure each: the checkpoint's own (a `mmalign train` folder),
        else one per trained configuration among the records (the lowest seed of each; a model
        scored in several settings, shots or retrieval directions counts once)."""
        if self.checkpoints and self.checkpoints[0] == self.path and self.history:
            return [Training(f"checkpoint {self.name}, {len(self.history)} epoch(s)", self.history)]
        configs: dict[str, ResultRecord] = {}
        for r in sorted((r for r in self.records if r.history), key=lambda r: r.seed):
            key = json.dumps([getattr(r, k) for k in TRAINING_FIELDS], sort_keys=True, default=str)
            configs.setdefault(key, r)
        return [Training(training_label(r), [e.model_dump() for e in r.history]) for r in configs.values()]


def training_label(r: ResultRecord) -> str:
    """`CUB aligner att+sent, seed 0, 50 epochs` (`(synthetic)` after the data set when it is)."""
    data = f"{r.dataset}{' (synthetic)' if r.synthetic else ''}"
    return f"{data} {r.method} {'+'.join(r.modalities)}, seed {r.seed}, {len(r.history)} epoch(s)"


def is_checkpoint(path: Path) -> bool:
    return (path / CONFIG).is_file() and (path / MODEL).is_file()


def read_run_dir(path: Path, name: str | None = None) -> RunDir:
    """Everything the report uses from ``path``; `ConfigError` when it holds nothing to report."""
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder (expected a checkpoint or a folder with {RESULTS})")
    run = RunDir(path=path, name=name or path.name)
    run.records = load_records(path / RESULTS)
    if is_checkpoint(path):
        run.checkpoints.append(path)
        run.history = history_rows(read_history(path))
    saved = [*(path / "models").glob("*/seed*"), *(path / "models").glob("seed*")]  # keyed by config; or older
    run.checkpoints += sorted(p for p in saved if is_checkpoint(p))
    if not run.history:
        with_history = [r for r in run.records if r.history]
        if with_history:
            run.history = [e.model_dump() for e in with_history[0].history]
    if not run.records and not run.checkpoints:
        raise ConfigError(f"{path}: nothing to report: no {RESULTS} and no checkpoint ({CONFIG} + {MODEL}); pass a "
                          "folder written by 'mmalign train', 'mmalign eval' or 'mmalign benchmark'")
    return run


def read_run_dirs(paths: list[Path]) -> list[RunDir]:
    """The run folders, named by their folder name (made unique with the parent's name)."""
    names = [p.name or str(p) for p in paths]
    runs = []
    for p, n in zip(paths, names):
        unique = n if names.count(n) == 1 else f"{p.parent.name}/{n}"
        runs.append(read_run_dir(p, unique))
    return runs
