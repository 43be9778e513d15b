"""Malformed input for the surfaces added after the first hardening corpus (issue 20): sweeps,
reports, tracking, plugin commands, the torchrun environment and downloads.

Like :mod:`malformed`, every case starts from something valid, breaks one thing, and says which
``mmalign`` command line must refuse it and what the error has to name (``expect``: regular
expressions matched case-insensitively against stderr). ``run``:

* ``inproc``: ``mmalign.cli.main(argv)`` in the test process, with training replaced by a trap
  (:class:`TrainingStarted`): every case must refuse before the first training step;
* ``subprocess``: ``python -m mmalign`` under a timeout, for what used to hang (a rendezvous that
  never completes, a Ray or MLflow server that never answers) or must not run in the test process.

``Workspace.out()`` folders hold a ``results.json`` (and the files a case puts there); the test
checks they are byte-identical afterwards. The mapped-feature headers are a library surface
(:func:`mmalign.datasets.map_features`) and are checked in ``tests/test_hardening_surfaces.py``.
"""

from __future__ import annotations

import json
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, PositiveInt

import malformed
import mmalign

PNG = b"\x89PNG\r\n\x1a\n a picture the user drew"
USER_PAGE = "<html><body>my own notes, not a report</body></html>\n"


class TrainingStarted(BaseException):
    """Raised by the trap that replaces the training loop: a case got as far as training. A
    ``BaseException``, so no ``except Exception`` on the way (the CLI's, a sweep's) can hide it."""


@dataclass(frozen=True)
class Case:
    id: str
    surface: str  # sweep | report | tracking | plugin | torchrun | download | config
    build: Callable[["Workspace"], list[str]]
    expect: tuple[str, ...]
    run: str = "inproc"  # inproc | subprocess
    timeout: float = 60.0  # subprocess cases: what used to hang fails the test after this
    may_add: tuple[str, ...] = ()  # names of new files the refusal may leave (a downloaded archive, kept)


@dataclass
class Workspace:
    root: Path
    guarded: list[Path] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)  # set (None: unset) while the command runs
    plugins: list[tuple[str, object]] = field(default_factory=list)  # (name, hook object) added in-process

    def out(self, name: str = "out") -> Path:
        out = self.root / name
        out.mkdir(exist_ok=True)
        (out / "results.json").write_text(json.dumps(malformed.PRIOR_RESULTS, indent=2) + "\n")
        self.guarded.append(out)
        return out

    def data(self) -> Path:
        folder = self.root / "data" / "toy"
        if not folder.is_dir():
            malformed.write_dataset(self.root / "data")
        return folder

    def config(self, **aligner: Any) -> Path:
        """A valid run config (``aligner`` replaces top-level aligner keys)."""
        cfg = malformed.run_config(self.data(), **aligner)
        return malformed.write_toml(self.root / "run.toml", cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- sweeps ------------------------------------------------------------------------------------------

def sweep_file(ws: Workspace, fixed: str = "", grid: str = "seed = [0]", random: str = "", execution: str = "") -> Path:
    ramps = "\n".join(f'"aligner.training.warmup.{f}" = {{ factor = {w} }}' for f, w in (("kl", 0.25), ("cross", 2.37), ("align", 8.13)))
    text = (f'[fixed]\ndataset = "{ws.data()}"\nepochs = 1\nclassifier_epochs = 3\n"aligner.latent_size" = 4\n'
            f'"aligner.training.batch_size" = 16\n{ramps}\n{fixed}\n\n[grid]\n{grid}\n')
    if random:
        text += f"\n[random]\n{random}\n"
    if execution:
        text += f"\n[execution]\n{execution}\n"
    path = ws.root / "sweep.toml"
    path.write_text(text)
    ws.out()  # nothing may appear in it
    return path


def sweep_json(ws: Workspace, raw: dict) -> Path:
    base = {"fixed": {"dataset": str(ws.data()), "epochs": 1, "classifier_epochs": 3}, "grid": {"seed": [0]}}
    base.update(raw)
    path = ws.root / "sweep.json"
    path.write_text(json.dumps(base))
    ws.out()
    return path


def _list(**parts: str) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["sweep", str(sweep_file(ws, **parts)), "--list"]


def _list_json(raw: dict) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["sweep", str(sweep_json(ws, raw)), "--list"]


def _sweep(*flags: str, out: Callable[[Workspace], Path] | None = None, **parts: str) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        path = sweep_file(ws, **parts)
        target = out(ws) if out else ws.guarded[-1]
        workers = [] if "--ray" in flags else ["--workers", "1"]
        return ["sweep", str(path), "--out", str(target), *workers, "--threads", "1", "--no-progress", *flags]

    return build


def _guarded_file(ws: Workspace, name: str = "notes.txt") -> Path:
    out = ws.out("kept")
    (out / name).write_text("the user's own file\n")
    return out / name


def _out_under_file(ws: Workspace) -> Path:
    return _guarded_file(ws) / "sub"


def _with_file(name: str, content: bytes | str) -> Callable[[Workspace], Path]:
    def out(ws: Workspace) -> Path:
        folder = ws.guarded[-1] if ws.guarded else ws.out()
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return folder

    return out


SWEEP_CASES = [
    Case("sweep_uniform_overflows_a_float", "sweep",
         _list(random='samples = 2\n"aligner.training.lr" = { uniform = [-1e308, 1e308] }'),
         (r"sweep\.toml", r"random\.aligner\.training\.lr", r"wider than a float")),
    Case("sweep_uniform_infinite_bound", "sweep", _list(random='samples = 2\n"aligner.training.lr" = { uniform = [0.0, inf] }'),
         (r"random\.aligner\.training\.lr", r"finite")),
    Case("sweep_loguniform_infinite_bound", "sweep",
         _list(random='samples = 2\n"aligner.training.lr" = { loguniform = [1e-5, inf] }'),
         (r"random\.aligner\.training\.lr", r"finite")),
    Case("sweep_randint_float_bounds", "sweep", _list(random="samples = 2\nshots = { randint = [0.5, 3.7] }"),
         (r"random\.shots", r"randint", r"integer bounds")),
    Case("sweep_randint_beyond_int64", "sweep",
         _list_json({"random": {"samples": 2, "seed": 1, "synthetic_seed": {"randint": [0, 10**30]}}}),
         (r"sweep\.json", r"random\.synthetic_seed", r"2\^63")),
    Case("sweep_randint_boolean_bounds", "sweep", _list_json({"random": {"shots": {"randint": [False, True]}}}),
         (r"random\.shots", r"finite numbers")),
    Case("sweep_random_seed_negative", "sweep", _list(random='seed = -1\nsynthetic_seed = { choice = [0, 1] }'),
         (r"random\.seed", r"0 to 2\^63")),
    Case("sweep_samples_absurd", "sweep", _list(random='samples = 1000000000000\nsynthetic_seed = { choice = [0, 1] }'),
         (r"sweep\.toml", r"1,000,000,000,000 runs", r"at most 10,000"), run="subprocess", timeout=60),
    Case("sweep_grid_of_a_trillion_runs", "sweep",
         _list(grid="\n".join(f'"aligner.training.{k}" = [{", ".join(str(v) for v in vals)}]' for k, vals in (
             ("epochs", range(1, 11)), ("eps", [1e-8 * (i + 1) for i in range(10)]), ("log_every", range(1, 11)),
             ("weight_decay", [i / 10 for i in range(10)]))) + "\nseed = [" + ", ".join(map(str, range(100))) +
             "]\nshots = [" + ", ".join(map(str, range(10))) + "]\nsynthetic_seed = [" +
             ", ".join(map(str, range(1000))) + "]"),
         (r"sweep\.toml", r"runs", r"at most 10,000"), run="subprocess", timeout=60),
    Case("sweep_unknown_dataset", "sweep",
         _list_json({"fixed": {"dataset": "NOPE_NOT_A_SET", "epochs": 1, "classifier_epochs": 3}}),
         (r"fixed\.dataset", r"NOPE_NOT_A_SET", r"neither a data set card", r"existing folder")),
    Case("sweep_warmup_factor_negative", "sweep",
         _list(grid='"aligner.training.warmup.contrastive" = [{ factor = -0.5 }]'),
         (r"aligner\.training\.warmup", r"'contrastive'", r"'factor'", r">= 0")),
    Case("sweep_warmup_factor_infinite", "sweep",
         _list(grid='"aligner.training.warmup.contrastive" = [{ start = 0, end = 5, factor = inf }]'),
         (r"warmup", r"'factor'", r"finite")),
    Case("sweep_pair_weight_infinite", "sweep", _list(grid='"aligner.pair_weights" = [{ "cross/att->img" = inf }]'),
         (r"sweep\.toml", r"pair_weights", r"finite")),
    Case("sweep_learning_rate_infinite", "sweep", _list(grid='"aligner.training.lr" = [1e-4, inf]'),
         (r"grid\.aligner\.training\.lr", r"finite")),
    Case("sweep_out_is_a_file", "sweep", _sweep(out=_guarded_file), (r"--out", r"notes\.txt", r"is a file")),
    Case("sweep_out_under_a_file", "sweep", _sweep(out=_out_under_file), (r"--out", r"is a file, not a folder")),
    Case("sweep_out_holds_a_foreign_failures_file", "sweep",
         _sweep(out=_with_file("failures.json", "my own list of failures\n")),
         (r"--out", r"failures\.json", r"not written by a sweep")),
    Case("sweep_out_holds_a_foreign_scratch_folder", "sweep",
         _sweep(out=_with_file(".sweep-scratch/notes.txt", "keep me\n")),
         (r"--out", r"\.sweep-scratch", r"notes\.txt", r"did not write")),
    Case("sweep_threads_negative", "sweep", _sweep("--threads", "-2"), (r"--threads", r"at least 1")),
    Case("sweep_threads_zero", "sweep", _sweep("--threads", "0"), (r"--threads", r"at least 1")),
    Case("sweep_ray_unreachable", "sweep", lambda ws: _sweep("--ray", f"127.0.0.1:{free_port()}")(ws),
         (r"--ray 127\.0\.0\.1:\d+", r"no Ray cluster answers"), run="subprocess", timeout=90),
    Case("sweep_ray_address_malformed", "sweep", _sweep("--ray", "not-an-address"),
         (r"--ray not-an-address", r"HOST:PORT"), run="subprocess", timeout=90),
    Case("sweep_ray_cpus_per_run_negative", "sweep", lambda ws: _sweep("--ray", f"127.0.0.1:{free_port()}",
                                                                       "--cpus-per-run", "-1")(ws),
         (r"--cpus-per-run", r"greater than 0"), run="subprocess", timeout=90),
    Case("sweep_ray_gpus_per_run_nan", "sweep", lambda ws: _sweep("--ray", f"127.0.0.1:{free_port()}",
                                                                  "--gpus-per-run", "nan")(ws),
         (r"--gpus-per-run", r"finite"), run="subprocess", timeout=90),
]


# -- run configs: values nobody validated ------------------------------------------------------------

def _train(*flags: str, **aligner: Any) -> Callable[[Workspace], list[str]]:
    return lambda ws: ["train", str(ws.config(**aligner)), "--out", str(ws.out()), "--no-progress", *flags]


def _ramps(**families: dict) -> dict:
    base = dict(malformed.TINY_ALIGNER["training"]["warmup"])
    base.update(families)
    return {**malformed.TINY_ALIGNER["training"], "warmup": base}


CONFIG_CASES = [
    Case("train_warmup_factor_negative", "config", _train(training=_ramps(kl={"factor": -0.25})),
         (r"run\.toml", r"training\.warmup", r"'kl'", r"'factor'", r">= 0")),
    Case("train_warmup_factor_infinite", "config", _train(training=_ramps(align={"start": -1, "end": 0, "factor": float("inf")})),
         (r"run\.toml", r"'align'", r"'factor'", r"finite")),
    Case("train_warmup_start_nan", "config", _train(training=_ramps(cross={"start": float("nan"), "end": 3, "factor": 1.0})),
         (r"run\.toml", r"'cross'", r"'start'", r"finite")),
    Case("train_pair_weight_infinite", "config", _train(pair_weights={"cross/att->img": float("inf")}),
         (r"run\.toml", r"pair_weights", r"finite")),
    Case("train_learning_rate_infinite", "config", _train(training={**malformed.TINY_ALIGNER["training"], "lr": float("inf")}),
         (r"run\.toml", r"'training\.lr'", r"finite")),
    Case("train_adam_eps_infinite", "config", _train(training={**malformed.TINY_ALIGNER["training"], "eps": float("inf")}),
         (r"run\.toml", r"'training\.eps'", r"finite")),
]


# -- tracking: checked before any data is read -------------------------------------------------------

def _track(*flags: str, out: Callable[[Workspace], Path] | None = None) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        cfg = ws.config()
        target = ws.out()
        if out is not None:
            target = out(ws)
        resolved = [f.format(root=ws.root, out=target, port=free_port()) for f in flags]
        return ["train", str(cfg), "--out", str(target), "--no-progress", *resolved]

    return build


TRACKING_CASES = [
    Case("track_tensorboard_folder_is_a_file", "tracking", _track("--log", "tensorboard", out=_with_file("tensorboard", "x\n")),
         (r"tensorboard", r"is a file")),
    Case("track_mlflow_uri_is_a_regular_file", "tracking",
         lambda ws: _track("--log", "mlflow", "--tracking-uri", str(_guarded_file(ws)))(ws),
         (r"--tracking-uri", r"notes\.txt", r"is a file")),
    Case("track_mlflow_uri_unknown_scheme", "tracking", _track("--log", "mlflow", "--tracking-uri", "foo://bar/store"),
         (r"--tracking-uri foo://bar/store", r"unknown scheme 'foo'")),
    Case("track_mlflow_sqlite_under_a_file", "tracking",
         lambda ws: _track("--log", "mlflow", "--tracking-uri", f"sqlite:///{_guarded_file(ws)}/mlflow.db")(ws),
         (r"--tracking-uri", r"notes\.txt", r"is a file, not a folder")),
    Case("track_mlflow_sqlite_not_a_database", "tracking",
         lambda ws: _track("--log", "mlflow", "--tracking-uri", f"sqlite:///{_guarded_file(ws)}")(ws),
         (r"--tracking-uri", r"notes\.txt", r"not an SQLite database")),
    Case("track_mlflow_sqlite_two_slashes", "tracking", _track("--log", "mlflow", "--tracking-uri", "sqlite://mlflow.db"),
         (r"--tracking-uri sqlite://mlflow\.db", r"sqlite:///PATH")),
    Case("track_mlflow_plain_folder_store", "tracking", _track("--log", "mlflow", "--tracking-uri", "{root}/mlruns"),
         (r"--tracking-uri", r"mlruns", r"plain-folder store")),
    Case("track_mlflow_http_nobody_answers", "tracking", _track("--log", "mlflow", "--tracking-uri", "http://127.0.0.1:{port}"),
         (r"--tracking-uri http://127\.0\.0\.1:\d+", r"no tracking server answers"), run="subprocess", timeout=90),
    Case("track_mlflow_http_port_out_of_range", "tracking",
         _track("--log", "mlflow", "--tracking-uri", "http://127.0.0.1:99999"), (r"--tracking-uri", r"port")),
    Case("track_mlflow_store_in_out_is_foreign", "tracking", _track("--log", "mlflow", out=_with_file("mlflow.db", "notes\n")),
         (r"mlflow\.db", r"not an SQLite database")),
    Case("track_mlflow_artifacts_folder_is_a_file", "tracking", _track("--log", "mlflow", out=_with_file("mlartifacts", "x\n")),
         (r"mlartifacts", r"is a file")),
    Case("benchmark_mlflow_uri_unknown_scheme", "tracking",
         lambda ws: malformed.benchmark_argv(ws.data(), ws.out(), "--policy", "test", "--log", "mlflow",
                                             "--tracking-uri", "foo://bar"),
         (r"--tracking-uri foo://bar", r"unknown scheme")),
]


# -- torchrun environment: checked before the rendezvous ---------------------------------------------

def _dist(run: str = "inproc", **env: str | None) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        base = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
        ws.env.update({**base, **env})
        return ["train", str(ws.config(device="cpu")), "--out", str(ws.out()), "--no-progress"]

    return build


TORCHRUN_CASES = [
    Case("torchrun_world_size_zero", "torchrun", _dist(WORLD_SIZE="0"), (r"WORLD_SIZE='0'", r"1 or more")),
    Case("torchrun_world_size_negative", "torchrun", _dist(WORLD_SIZE="-2"), (r"WORLD_SIZE='-2'", r"1 or more")),
    Case("torchrun_world_size_text", "torchrun", _dist(WORLD_SIZE="two"), (r"WORLD_SIZE='two'", r"integer")),
    Case("torchrun_rank_text", "torchrun", _dist(RANK="first"), (r"RANK='first'", r"from 0 to 1")),
    Case("torchrun_rank_missing", "torchrun", _dist(RANK=None), (r"RANK is not set",)),
    Case("torchrun_master_port_text", "torchrun", _dist(MASTER_PORT="http"), (r"MASTER_PORT='http'", r"from 1 to 65535")),
    Case("torchrun_master_addr_missing", "torchrun", _dist(MASTER_ADDR=None), (r"MASTER_ADDR is not set",)),
    Case("torchrun_rank_beyond_world", "torchrun", _dist(RANK="2"), (r"RANK='2'", r"from 0 to 1"), run="subprocess"),
    Case("torchrun_rank_negative", "torchrun", _dist(RANK="-1"), (r"RANK='-1'", r"from 0 to 1"), run="subprocess"),
    Case("torchrun_local_rank_text", "torchrun", _dist(LOCAL_RANK="gpu0"), (r"LOCAL_RANK='gpu0'", r"integer"),
         run="subprocess"),
    Case("torchrun_master_port_out_of_range", "torchrun", _dist(MASTER_PORT="70000"), (r"MASTER_PORT='70000'",),
         run="subprocess"),
    Case("torchrun_rendezvous_timeout_invalid", "torchrun", _dist(RANK="1", MMALIGN_RENDEZVOUS_TIMEOUT="soon"),
         (r"MMALIGN_RENDEZVOUS_TIMEOUT='soon'", r"seconds"), run="subprocess"),
    Case("torchrun_rendezvous_times_out", "torchrun", _dist(RANK="1", MMALIGN_RENDEZVOUS_TIMEOUT="3"),
         (r"rendezvous at 127\.0\.0\.1:\d+ failed for rank 1 of 2", r"3 s"), run="subprocess", timeout=90),
]


# -- plugin commands and plugin modalities -----------------------------------------------------------

class CommandPlugin:
    """A third-party plugin adding sub-command ``name`` whose parser ``setup`` configures."""

    def __init__(self, name: str, setup: Callable[[Any], None]) -> None:
        self.name, self.setup = name, setup

    @mmalign.hookimpl
    def register_commands(self, subparsers: Any) -> None:
        self.setup(subparsers.add_parser(self.name, help="a test plugin's command"))


def _boom(args: Any) -> int:
    raise RuntimeError("the plugin's own bug")


def _command(handler: Callable[[Any], Any] | None) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        ws.out()
        setup = (lambda p: p.set_defaults(func=handler)) if handler is not None else (lambda p: p.add_argument("--x"))
        ws.plugins.append(("test-badcmd", CommandPlugin("badcmd", setup)))
        return ["badcmd"]

    return build


class WrongDefaultHidden(mmalign.FeatureModality):
    """Class attributes with a hidden size no network can have, as a careless plugin declares it."""

    kind = "wrong_default_att"
    granularity = "class"

    class Options(mmalign.FeatureModality.Options):
        source: str | None = Field("attributes")
        hidden: tuple[PositiveInt, PositiveInt] = (-4, 8)


class WrongDefaultType(WrongDefaultHidden):
    kind = "wrong_type_att"

    class Options(mmalign.FeatureModality.Options):
        source: str | None = Field("attributes")
        hidden: tuple[PositiveInt, PositiveInt] = ("wide", 8)  # type: ignore[assignment]


class ModalityPlugin:
    def __init__(self, modality: type) -> None:
        self.modality = modality

    @mmalign.hookimpl
    def register_modalities(self, register: Any) -> None:
        register(self.modality())


def _plugin_modality(modality: type) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        ws.plugins.append((f"test-{modality.kind}", ModalityPlugin(modality)))
        cfg = malformed.run_config(ws.data())
        cfg["modalities"] = [malformed.MODALITIES[0], {"kind": modality.kind, "name": "att"}]
        path = malformed.write_toml(ws.root / "run.toml", cfg)
        return ["train", str(path), "--out", str(ws.out()), "--no-progress"]

    return build


PLUGIN_CASES = [
    Case("plugin_handler_returns_text", "plugin", _command(lambda args: "done"),
         (r"sub-command 'badcmd' of plugin 'test-badcmd'", r"returned 'done'", r"exit code")),
    Case("plugin_handler_returns_float", "plugin", _command(lambda args: 2.5),
         (r"'badcmd'", r"test-badcmd", r"returned 2\.5")),
    Case("plugin_handler_returns_dict", "plugin", _command(lambda args: {"ok": True}),
         (r"'badcmd'", r"test-badcmd", r"returned \{'ok': True\}")),
    Case("plugin_command_without_handler", "plugin", _command(None),
         (r"sub-command 'badcmd' of plugin 'test-badcmd'", r"no handler", r"set_defaults")),
    Case("plugin_handler_raises_its_own_error", "plugin", _command(_boom),
         (r"sub-command 'badcmd' of plugin 'test-badcmd'.* failed:", r"RuntimeError: the plugin's own bug", r"--debug")),
    Case("plugin_handler_divides_by_zero", "plugin", _command(lambda args: 1 // 0),
         (r"'badcmd'", r"failed", r"ZeroDivisionError")),
    Case("plugin_modality_default_hidden_negative", "plugin", _plugin_modality(WrongDefaultHidden),
         (r"plugin 'test-wrong_default_att'", r"\(wrong_default_att\)", r"'hidden", r"greater than 0")),
    Case("plugin_modality_default_hidden_text", "plugin", _plugin_modality(WrongDefaultType),
         (r"plugin 'test-wrong_type_att'", r"'hidden", r"integer")),
]


# -- reports: outputs -------------------------------------------------------------------------------

def report_record(**changes: Any) -> dict:
    """A valid results record (schema 2) of a small eval, with ``changes``."""
    record = {"schema_version": 2, "command": "eval", "dataset": "TOY", "setting": "gzsl", "shots": 0, "seed": 0,
              "side_info": "attributes", "modalities": ["img", "att"], "policy": "test", "versions": {"mmalign": "0.2.0"},
              "metrics": {"S": 40.0, "U": 30.0, "H": 34.3},
              "per_class": {"S": {"a": 40.0, "b": 40.0}, "U": {"c": 30.0}},
              "confusion": {"rows": ["c"], "columns": ["a", "other"], "counts": [[3, 1]]},
              "history": [{"epoch": 0, "terms": {"loss": 5.0, "recon/img": 3.0}, "weights": {"kl": 0.25}, "seconds": 0.1}]}
    record.update(changes)
    return record


def run_folder(ws: Workspace, name: str = "run", **changes: Any) -> Path:
    folder = ws.out(name)
    (folder / "results.json").write_text(json.dumps([report_record(**changes)], indent=2) + "\n")
    return folder


def _report(out: Callable[[Workspace, Path], Path], **changes: Any) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        run = run_folder(ws, **changes)
        return ["report", str(run), "--out", str(out(ws, run))]

    return build


def _user_page(ws: Workspace, run: Path) -> Path:
    (run / "index.html").write_text(USER_PAGE)
    return run


def _user_png(ws: Workspace, run: Path) -> Path:
    folder = ws.out("pictures")
    (folder / "run-paper.png").write_bytes(PNG)
    return folder


REPORT_CASES = [
    Case("report_out_is_a_file", "report", _report(lambda ws, run: _guarded_file(ws)), (r"--out", r"notes\.txt", r"is a file")),
    Case("report_out_under_a_file", "report", _report(lambda ws, run: _out_under_file(ws)),
         (r"--out", r"is a file, not a folder")),
    Case("report_out_is_the_run_folder_with_the_users_page", "report", _report(_user_page),
         (r"--out", r"index\.html", r"not written by mmalign report")),
    Case("report_out_holds_the_users_page", "report",
         _report(lambda ws, run: (ws.out("page") / "index.html").write_text(USER_PAGE) and ws.guarded[-1]),
         (r"--out", r"index\.html", r"not written by mmalign report")),
    Case("report_out_holds_a_picture_of_a_figures_name", "report", _report(_user_png),
         (r"--out", r"run-paper\.png", r"not written by mmalign report")),
    Case("report_confusion_ragged", "report", _report(lambda ws, run: ws.root / "report",
                                                       confusion={"rows": ["c", "d"], "columns": ["a", "other"],
                                                                  "counts": [[3, 1], [2]]}),
         (r"results\.json", r"confusion", r"counts\[1\]", r"one per column")),
    Case("report_confusion_missing_rows", "report", _report(lambda ws, run: ws.root / "report",
                                                             confusion={"rows": ["c", "d"], "columns": ["a"], "counts": [[3]]}),
         (r"results\.json", r"confusion", r"one per row name")),
    Case("report_confusion_negative_count", "report", _report(lambda ws, run: ws.root / "report",
                                                               confusion={"rows": ["c"], "columns": ["a"], "counts": [[-3]]}),
         (r"results\.json", r"confusion", r"negative")),
]


# -- downloads --------------------------------------------------------------------------------------

def xlsa17_zip(path: Path) -> Path:
    """A tiny archive with the release's layout (``xlsa17/data/TOY/res101.mat`` and ``att_splits.mat``)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xlsa17/data/TOY/res101.mat", b"not really a mat file")
        zf.writestr("xlsa17/data/TOY/att_splits.mat", b"not really a mat file")
    return path


def _download(dest: Callable[[Workspace], Path], url: Callable[[Workspace], str] | None = None,
              *flags: str) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        where = dest(ws)
        address = url(ws) if url else xlsa17_zip(ws.root / "xlsa17.zip").as_uri()
        return ["data", "download", "xlsa17", "--data-dir", str(where), "--url", address, "--no-progress", *flags]

    return build


def _download_env(ws: Workspace) -> list[str]:
    ws.env["MMALIGN_DATA_DIR"] = str(_guarded_file(ws))
    return ["data", "download", "xlsa17", "--url", xlsa17_zip(ws.root / "xlsa17.zip").as_uri(), "--no-progress"]


DOWNLOAD_CASES = [
    Case("download_data_dir_is_a_file", "download", _download(_guarded_file), (r"--data-dir", r"notes\.txt", r"is a file")),
    Case("download_data_dir_under_a_file", "download", _download(_out_under_file),
         (r"--data-dir", r"notes\.txt", r"is a file, not a folder")),
    Case("download_env_data_dir_is_a_file", "download",
         _download_env,
         (r"notes\.txt", r"is a file")),
    Case("download_url_without_scheme", "download", _download(lambda ws: ws.out(), lambda ws: "example.org/xlsa17.zip"),
         (r"--url example\.org/xlsa17\.zip", r"no scheme", r"https://")),
    Case("download_url_is_a_local_path", "download",
         _download(lambda ws: ws.out(), lambda ws: str(xlsa17_zip(ws.root / "xlsa17.zip"))),
         (r"--url", r"xlsa17\.zip", r"no scheme")),
    Case("download_existing_foreign_file_named_like_the_archive", "download",
         _download(lambda ws: _with_file("notes.zip", "my notes, not a zip\n")(ws),
                   lambda ws: (ws.root / "notes.zip").as_uri()),
         (r"notes\.zip", r"not a valid zip", r"left unchanged")),
    Case("download_existing_archive_checksum_differs", "download",
         _download(lambda ws: _with_file("xlsa17.zip", "an archive the user keeps\n")(ws), None, "--sha256", "0" * 64),
         (r"xlsa17\.zip", r"does not match", r"left unchanged")),
    Case("download_unpack_blocked_by_a_folder", "download",
         _download(lambda ws: _with_file("TOY/res101.mat/keep.txt", "the user's\n")(ws)),
         (r"cannot unpack", r"res101\.mat", r"is a folder"), may_add=("xlsa17.zip",)),
    Case("download_unpack_blocked_by_a_file", "download", _download(lambda ws: _with_file("TOY", "a file, not a folder\n")(ws)),
         (r"cannot unpack", r"TOY", r"is a file"), may_add=("xlsa17.zip",)),
]


CASES: list[Case] = [*SWEEP_CASES, *CONFIG_CASES, *TRACKING_CASES, *TORCHRUN_CASES, *PLUGIN_CASES, *REPORT_CASES,
                     *DOWNLOAD_CASES]
CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case ids"
