"""Malformed input on the newer surfaces (tests/malformed_surfaces.py) through the real CLI: a short
error (one to four lines, no traceback), a non-zero exit, nothing already there changed, no
training step, and no wait: what used to hang runs in a subprocess under a timeout. Also: the
mapped-feature headers, the CLI's top-level rule (any exception is one line, a closed pipe is
quiet), a training state that cannot be written mid-fit, and the results lock files."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import malformed
import malformed_surfaces
from malformed_surfaces import CASES, Case, TrainingStarted, Workspace
from mmalign.cli import main
from mmalign.errors import DataError
from mmalign.plugins import add_plugin, remove_plugin

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folders: list[Path]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_stderr(case: Case, err: str) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 4, f"expected 1 to 4 lines on stderr, got {len(lines)}: {err!r}"
    assert lines[-1].startswith("mmalign: error: "), err
    missing = [p for p in case.expect if not re.search(p, err, re.IGNORECASE)]
    assert not missing, f"{err!r} does not name {missing}"


def _trap_training(monkeypatch) -> None:
    """Replace the training loop (one run and stacked seeds) by a trap: no case may train."""
    import mmalign.aligner

    def trap(*args, **kwargs):
        raise TrainingStarted("a training step was about to run")

    monkeypatch.setattr(mmalign.aligner, "train", trap)
    monkeypatch.setattr(mmalign.aligner, "train_seeds", trap)


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for key in ("MMALIGN_DEBUG", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "RAY_ADDRESS"):
        env.pop(key, None)
    return env


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_surface_case_is_a_short_error_before_any_work(case: Case, tmp_path, capsys, monkeypatch):
    ws = Workspace(tmp_path)
    argv = case.build(ws)
    before = _snapshot(ws.guarded)
    assert before, "every case guards a folder"
    started = time.monotonic()
    if case.run == "subprocess":
        env = _env()
        for key, value in ws.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        try:
            proc = subprocess.run([sys.executable, "-m", "mmalign", *argv], capture_output=True, text=True, env=env,
                                  timeout=case.timeout, cwd=tmp_path)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{case.id}: still running after {case.timeout:.0f} s (it must refuse at once)")
        code, err = proc.returncode, proc.stderr
    else:
        for key, value in ws.env.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        _trap_training(monkeypatch)
        for name, plugin in ws.plugins:
            add_plugin(plugin, name)
        try:
            capsys.readouterr()
            code = main(argv)
            _, err = capsys.readouterr()
        finally:
            for name, _ in ws.plugins:
                remove_plugin(name)
    assert code not in (0, None), err
    _check_stderr(case, err)
    after = _snapshot(ws.guarded)
    assert {k: v for k, v in after.items() if k in before} == before, "a file that was there changed or went"
    added = sorted(Path(k).name for k in set(after) - set(before))
    assert all(name in case.may_add for name in added), f"new files: {added}"
    assert time.monotonic() - started < case.timeout


def test_surface_cases_cover_every_surface():
    counts = {s: sum(c.surface == s for c in CASES)
              for s in ("sweep", "report", "tracking", "plugin", "torchrun", "download", "config")}
    assert len(CASES) >= 60 and all(n >= 5 for n in counts.values()), counts
    assert all(c.expect for c in CASES)


# -- the refusals happen before the first training step ----------------------------------------------

def _run_trapped(monkeypatch, capsys, argv: list[str]) -> tuple[int, str]:
    _trap_training(monkeypatch)
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def test_sweep_tracked_train_and_torchrun_train_refuse_before_the_first_step(tmp_path, monkeypatch, capsys):
    """The same inputs with the trap removed would train: each refusal comes before a step would."""
    ws = Workspace(tmp_path)
    sweep = malformed_surfaces.sweep_file(ws, grid='"aligner.training.warmup.contrastive" = [{ factor = -1.0 }]')
    code, err = _run_trapped(monkeypatch, capsys, ["sweep", str(sweep), "--out", str(tmp_path / "s"), "--workers", "1",
                                                   "--no-progress"])
    assert code == 2 and "'factor'" in err and not (tmp_path / "s").exists()
    cfg = ws.config()
    code, err = _run_trapped(monkeypatch, capsys, ["train", str(cfg), "--out", str(tmp_path / "t"), "--log", "mlflow",
                                                   "--tracking-uri", "foo://x", "--no-progress"])
    assert code == 2 and "unknown scheme" in err and not (tmp_path / "t").exists()
    monkeypatch.setenv("WORLD_SIZE", "0")
    code, err = _run_trapped(monkeypatch, capsys, ["train", str(cfg), "--out", str(tmp_path / "d"), "--no-progress"])
    assert code == 2 and "WORLD_SIZE='0'" in err and not (tmp_path / "d").exists()
    # and the trap itself works: a valid run reaches it
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(TrainingStarted):
        main(["train", str(cfg), "--out", str(tmp_path / "ok"), "--no-progress"])


# -- reports: what the schema accepts, the report draws or skips with a note --------------------------

def test_report_of_records_it_cannot_draw_skips_them_with_a_note(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ws = Workspace(tmp_path)
    empty = malformed_surfaces.run_folder(ws, "empty", per_class={"S": {}, "U": {}},
                                          confusion={"rows": [], "columns": [], "counts": []})
    no_loss = malformed_surfaces.run_folder(ws, "noloss", history=[{"epoch": 0, "terms": {"recon/img": 1.0},
                                                                    "seconds": 0.1}])
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", str(empty), str(no_loss), "--out", str(out)]) == 0, capsys.readouterr().err
    page = (out / "index.html").read_text()
    assert "Per-class accuracy: not drawn, the records&#x27; per-class tables are empty." in page
    assert "Confusion of the worst classes: not drawn" not in page or "empty" in page
    assert "Total training loss: not drawn" in page and "KeyError" in page  # the side-by-side loss figure
    assert (out / "empty-paper.png").is_file() and not (out / "empty-per-class.png").exists()
    # the page is mmalign's: a second report into the same folder replaces it
    assert main(["report", str(empty), "--out", str(out)]) == 0


# -- mapped features: third-party files get one-line errors naming the file ---------------------------

def _shard(path: Path, header: object, payload: bytes = b"\0" * 32) -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + payload)
    return path


MAPPED_HEADERS = {
    "no_data_offsets": ({"features": {"dtype": "F32", "shape": [2, 4]}}, r"'data_offsets' must be \[begin, end\]"),
    "entry_not_an_object": ({"features": 5}, r"header entry 'features' is a JSON int"),
    "header_not_an_object": (5, r"header is a JSON int"),
    "offsets_not_a_pair": ({"features": {"dtype": "F32", "shape": [2, 4], "data_offsets": "0-32"}}, r"'data_offsets'"),
    "shape_of_text": ({"features": {"dtype": "F32", "shape": ["2", "4"], "data_offsets": [0, 32]}}, r"2-D float matrix"),
    "offsets_before_the_data": ({"features": {"dtype": "F32", "shape": [2, 4], "data_offsets": [-32, 0]}},
                                r"'data_offsets' must be \[begin, end\], two non-negative integers"),
    "shape_of_booleans": ({"features": {"dtype": "F32", "shape": [True, 8], "data_offsets": [0, 32]}}, r"2-D float matrix"),
}


@pytest.mark.parametrize("name", sorted(MAPPED_HEADERS))
def test_mapped_shard_with_a_malformed_header_is_a_data_error_naming_the_file(name, tmp_path):
    from mmalign.datasets import map_features

    header, message = MAPPED_HEADERS[name]
    path = _shard(tmp_path / f"{name}.safetensors", header)
    before = path.read_bytes()
    with pytest.raises(DataError, match=message) as info:
        map_features(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before


# -- the CLI's top-level rule -----------------------------------------------------------------------

def test_cli_closed_pipe_exits_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mmalign", "schema", "results"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    proc.stdout.close()  # `| head -0`: the reader is gone before the schema is printed
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 141, (proc.returncode, err)


def test_cli_foreign_exception_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    ws = Workspace(tmp_path)
    argv = malformed_surfaces._command(malformed_surfaces._boom)(ws)
    add_plugin(ws.plugins[0][1], ws.plugins[0][0])
    try:
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "RuntimeError: the plugin's own bug" in err and "Traceback" not in err
        assert main(["--debug", *argv]) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("mmalign: error: ")
        monkeypatch.setenv("MMALIGN_DEBUG", "1")
        assert main(argv) == 1 and "Traceback (most recent call last)" in capsys.readouterr().err
    finally:
        remove_plugin(ws.plugins[0][0])


# -- a training state that cannot be written mid-fit ----------------------------------------------------

def test_train_rescues_the_training_state_when_it_cannot_be_written_mid_fit(tmp_path, monkeypatch, capsys):
    folder = malformed.write_dataset(tmp_path / "data")
    training = {**malformed.TINY_ALIGNER["training"], "epochs": 3}
    cfg = malformed.write_toml(tmp_path / "run.toml", malformed.run_config(folder, training=training))
    out, rescue = tmp_path / "out", tmp_path / "rescue"
    monkeypatch.setenv("MMALIGN_RESCUE_DIR", str(rescue))
    real = os.fsync
    writes = {"n": 0}

    def fsync(fd):  # the first state write succeeds, the disk is full for the second
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out.resolve())):
            writes["n"] += 1
            if writes["n"] > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(out), "--checkpoint-every", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left" in err.lower(), err
    (saved,) = list(rescue.iterdir())
    assert f"the training state after epoch 2" in err and str(saved) in err
    monkeypatch.undo()
    from mmalign.resume import load_training_state

    assert load_training_state(saved)["epochs_done"] == 2
    assert load_training_state(out)["epochs_done"] == 1  # the previous state is still there


# -- the results lock ----------------------------------------------------------------------------------

def test_results_lock_file_is_removed_after_each_write(tmp_path):
    from mmalign.records.store import append_result, results_lock

    path = tmp_path / "results.json"
    append_result(path, malformed.PRIOR_RESULTS[0])
    append_result(path, {**malformed.PRIOR_RESULTS[0], "seed": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    with results_lock(path):
        assert (tmp_path / ".results.json.lock").exists()
    assert not (tmp_path / ".results.json.lock").exists()
    assert [r["seed"] for r in json.loads(path.read_text())] == [0, 1]


def test_results_lock_excludes_a_second_writer_across_processes(tmp_path):
    """While one process holds the lock, another waits (its timeout expires), then gets it."""
    from filelock import Timeout

    from mmalign.lockfile import TidyLock

    lock = tmp_path / ".results.json.lock"
    code = ("import sys, time; sys.path.insert(0, %r); from mmalign.lockfile import TidyLock\n"
            "with TidyLock(%r):\n    print('held', flush=True); time.sleep(3)\n") % (str(ROOT), str(lock))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(Timeout):
        with TidyLock(lock, timeout=0.3):
            pass
    with TidyLock(lock, timeout=30):  # the holder let go (and removed its file): this one holds a new file
        assert lock.exists()
    holder.wait(timeout=30)
    assert not lock.exists()
    np.testing.assert_equal(holder.returncode, 0)
