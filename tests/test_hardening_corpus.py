"""The malformed-input corpus (tests/malformed.py) through the real CLI: one clear line, exit 2,
nothing written.

Each case is run in-process (``mmalign.cli.main``); a few also in a real ``python -m mmalign.cli``
subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import malformed
from malformed import CASES, Case, Workspace
from mmalign.cli import main

ERROR_CASES = [c for c in CASES if c.kind != "accepted"]


def _param(case: Case):
    return pytest.param(case, id=case.id, marks=case.marks)


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory) -> Path:
    return malformed.make_checkpoint(tmp_path_factory.mktemp("base"))


def _snapshot(folders: list[Path]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_line(case: Case, err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("mmalign: error: "), line
    missing = [p for p in case.expect if not re.search(p, line, re.IGNORECASE)]
    assert not missing, f"{line!r} does not name {missing}"
    return line


@pytest.mark.parametrize("case", [_param(c) for c in ERROR_CASES])
def test_corpus_case_is_one_clear_line_and_writes_nothing(case: Case, tmp_path, base_checkpoint, capsys, monkeypatch):
    ws = Workspace(tmp_path, checkpoint=base_checkpoint)
    argv = case.build(ws)
    before = _snapshot(ws.guarded)
    assert before, "every case guards a folder with a results.json"
    for patch in ws.patches:  # an injected fault: a full disk, a folder that refuses writes
        patch(monkeypatch)
    capsys.readouterr()
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2, err
    _check_line(case, err)
    assert _snapshot(ws.guarded) == before, "the output folder changed"


def test_corpus_float64_features_are_accepted(tmp_path, capsys):
    import scipy.io

    from mmalign.datasets import load_dataset, read_res101
    from mmalign.datasets.matfile import mat_shapes

    ws = Workspace(tmp_path)
    argv = malformed.case("features_float64_accepted").build(ws)
    folder = Path(argv[argv.index("--data-dir") + 1])
    assert dict((n, t) for n, _, t in scipy.io.whosmat(str(folder / "res101.mat")))["features"] == "double"
    assert mat_shapes(folder / "res101.mat")["features"] == (malformed.FEAT_DIM, malformed.N)
    res = read_res101(folder / "res101.mat")
    assert res.features.dtype == np.float32
    np.testing.assert_allclose(res.features, malformed.small_data().sample_features["features"], rtol=1e-6)
    data = load_dataset(folder, use_cache=False)
    assert data.sample_features["features"].dtype == np.float32 and data.num_samples == malformed.N
    # and the CLI trains on it
    cfg = malformed.write_toml(tmp_path / "run.toml", malformed.run_config(folder))
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(tmp_path / "ckpt"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "trained img, att on toy" in out and "Traceback" not in err


def test_corpus_has_at_least_25_cases_of_every_kind(tmp_path, base_checkpoint):
    kinds = {k: sum(c.kind == k for c in CASES) for k in ("data", "config", "checkpoint", "accepted")}
    assert len(CASES) >= 25 and kinds["data"] >= 15 and kinds["config"] >= 5 and kinds["checkpoint"] >= 8, kinds
    assert all(c.expect for c in ERROR_CASES)
    argvs = malformed.generate(tmp_path / "corpus", base=base_checkpoint)
    assert sorted(argvs) == sorted(c.id for c in CASES)
    assert all((tmp_path / "corpus" / c.id / "argv.json").is_file() for c in CASES)


def test_corpus_new_cases_cover_every_surface():
    kinds = {k: sum(c.kind == k for c in malformed.NEW_CASES)
             for k in ("config", "output", "cli", "checkpoint", "state", "results", "pickle")}
    assert len(malformed.NEW_CASES) >= 60 and all(n >= 5 for n in kinds.values()), kinds
    assert all(c.expect for c in malformed.NEW_CASES)


def test_corpus_debug_flag_shows_the_traceback(tmp_path, base_checkpoint, capsys):
    case = malformed.case("ckpt_newer_format")
    argv = case.build(Workspace(tmp_path, checkpoint=base_checkpoint))
    capsys.readouterr()
    assert main(["--debug", *argv]) == 2
    _, err = capsys.readouterr()
    assert "Traceback (most recent call last)" in err and "CheckpointError" in err
    assert err.strip().splitlines()[-1].startswith("mmalign: error: ")


SUBPROCESS_CASES = ["mat_v73_hdf5", "config_unknown_section", "ckpt_tensor_missing", "ckpt_weight_nan",
                    "pickle_dst_is_src", "state_generator_wrong_size"]


def test_corpus_real_subprocess_exit_code_and_stderr(tmp_path, base_checkpoint):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    env.pop("MMALIGN_DEBUG", None)
    runs = []
    for case_id in SUBPROCESS_CASES:  # started together: the interpreter start-up dominates
        case = malformed.case(case_id)
        ws = Workspace(tmp_path / case_id, checkpoint=base_checkpoint)
        ws.root.mkdir()
        argv = case.build(ws)
        before = _snapshot(ws.guarded)
        proc = subprocess.Popen([sys.executable, "-m", "mmalign.cli", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        runs.append((case, ws, before, proc))
    for case, ws, before, proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (case.id, err)
        _check_line(case, err)
        assert _snapshot(ws.guarded) == before
