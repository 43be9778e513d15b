"""Sweeps: the grid is validated and counted before anything runs; a 2-worker pool and a 2-CPU local
Ray give the sequential records; a killed driver resumes with every record exactly once; a failing
run is retried, then reported, while the others finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import malformed
from mmalign.cli import main as cli_main
from mmalign.errors import ConfigError
from mmalign.sweeps import InProcess, LocalPool, parse_sweep, read_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("S", "U", "H", "classifier_epochs")


def _sweep_toml(path: Path, dataset: Path, shots=(0, 1), retries: int = 0, epochs: int = 2) -> Path:
    ramps = "\n".join(f'"aligner.training.warmup.{f}" = {{ factor = {w} }}' for f, w in (("kl", 0.25), ("cross", 2.37), ("align", 8.13)))
    path.write_text(f'''[fixed]
dataset = "{dataset}"
epochs = {epochs}
classifier_epochs = 3
"aligner.latent_size" = 4
"aligner.training.batch_size" = 16
{ramps}

[grid]
seed = [0, 1, 2]
shots = {list(shots)}

[execution]
retries = {retries}
''')
    return path


def _by_run(records: list[dict]) -> dict[str, tuple]:
    return {r["details"]["sweep"]["run"]: tuple(r["metrics"].get(k) for k in METRICS) for r in records}


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MMALIGN_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    folder = malformed.write_dataset(root / "data", "toyS", malformed.small_data(per_class=20))
    toml = _sweep_toml(root / "sweep.toml", folder)
    report = run_sweep(read_sweep(toml), root / "sequential", InProcess(threads=1), progress=False, log=lambda s: None)
    return root, folder, toml, report.appended


def test_sweep_spec_lists_counts_and_names_the_bad_key(tmp_path):
    raw = {"fixed": {"dataset": "CUB", "synthetic": True, "epochs": 1},
           "grid": {"setting": ["gzsl", "zsl"], "seed": [0, 1, 2]},
           "random": {"samples": 2, "seed": 7, "aligner.training.lr": {"loguniform": [1e-4, 1e-3]},
                      "aligner.latent_size": {"choice": [16, 32]}}}
    sweep = parse_sweep(raw, "s.toml")
    assert len(sweep.runs) == 2 * 3 * 2 and len({r.id for r in sweep.runs}) == 12
    assert sweep.varying == ["setting", "seed", "aligner.training.lr", "aligner.latent_size"]
    lrs = {r.params["aligner.training.lr"] for r in sweep.runs}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-3 for lr in lrs)
    assert [r.id for r in parse_sweep(raw, "s.toml").runs] == [r.id for r in sweep.runs]  # seeded draws
    bad = {**raw, "grid": {**raw["grid"], "aligner.latent_size": [8, -3]}, "random": {}}
    with pytest.raises(ConfigError, match=r"s\.toml: key 'grid\.aligner\.latent_size' = -3: .*latent_size"):
        parse_sweep(bad, "s.toml")
    with pytest.raises(ConfigError, match=r"s\.toml: key 'grid\.setting' = 'gzls'.*expected one of \['gzsl', 'zsl'\]"):
        parse_sweep({**raw, "grid": {"setting": ["gzls"]}}, "s.toml")
    with pytest.raises(ConfigError, match=r"s\.toml: \[grid\]: key 'lr': not a run key"):
        parse_sweep({**raw, "grid": {"lr": [1]}}, "s.toml")
    with pytest.raises(ConfigError, match=r"key 'random\.aligner\.training\.lr': expected one of"):
        parse_sweep({**raw, "random": {"aligner.training.lr": [1, 2]}}, "s.toml")
    with pytest.raises(ConfigError, match=r"key 'grid\.seed': expected a non-empty list"):
        parse_sweep({**raw, "grid": {"seed": 3}}, "s.toml")


def test_sweep_cli_list_prints_every_run_and_the_count(setup, capsys):
    _, _, toml, _ = setup
    assert cli_main(["sweep", str(toml), "--list"]) == 0
    out = capsys.readouterr().out
    assert "6 run(s) over seed, shots" in out and "seed=2, shots=1" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 6


def test_sweep_pool_of_two_workers_gives_the_sequential_records(setup, tmp_path):
    _, _, toml, sequential = setup
    report = run_sweep(read_sweep(toml), tmp_path, LocalPool(2, threads=1), progress=False, log=lambda s: None)
    assert len(report.appended) == 6 and not report.failures
    assert _by_run(report.appended) == _by_run(sequential)
    assert len(json.loads((tmp_path / "results.json").read_text())) == 6
    assert not (tmp_path / ".sweep-scratch").exists()


def test_sweep_on_a_local_ray_of_two_cpus_gives_the_sequential_records(setup, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra [ray]; not installed")
    _, _, toml, sequential = setup
    proc = subprocess.run([sys.executable, "-m", "mmalign", "sweep", str(toml), "--out", str(tmp_path), "--ray",
                           "--workers", "2", "--threads", "1", "--no-progress"],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _by_run(json.loads((tmp_path / "results.json").read_text())) == _by_run(sequential)


def test_sweep_killed_driver_resumes_with_every_record_exactly_once(setup, tmp_path, capsys):
    _, folder, _, _ = setup
    toml = _sweep_toml(tmp_path / "slow.toml", folder, epochs=8)  # runs long enough to be killed between two
    results = tmp_path / "results.json"
    proc = subprocess.Popen([sys.executable, "-m", "mmalign", "sweep", str(toml), "--out", str(tmp_path),
                             "--workers", "1", "--no-progress"], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (results.exists() and len(json.loads(results.read_text() or "[]")) >= 1):
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the first records"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    before = len(json.loads(results.read_text()))
    assert 1 <= before < 6
    assert cli_main(["sweep", str(toml), "--out", str(tmp_path), "--workers", "1", "--no-progress"]) == 2
    assert "pass --resume" in capsys.readouterr().err and len(json.loads(results.read_text())) == before
    assert cli_main(["sweep", str(toml), "--out", str(tmp_path), "--workers", "1", "--no-progress", "--threads", "1",
                     "--resume"]) == 0
    records = json.loads(results.read_text())
    ids = [r["details"]["sweep"]["run"] for r in records]
    assert len(ids) == 6 and sorted(ids) == sorted(r.id for r in read_sweep(toml).runs)
    assert cli_main(["sweep", str(toml), "--out", str(tmp_path), "--workers", "1", "--no-progress", "--resume"]) == 0
    assert len(json.loads(results.read_text())) == 6


def test_sweep_failing_run_is_retried_then_reported_while_the_others_finish(setup, tmp_path, capsys):
    root, folder, _, _ = setup
    toml = _sweep_toml(tmp_path / "bad.toml", folder, shots=(0, 40), retries=1)  # 40 shots: too few test images
    assert cli_main(["sweep", str(toml), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress",
                     "--threads", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("retrying") == 3
    assert captured.err.count("failed: run") == 3 and "has only" in captured.err
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(r["seed"] for r in records) == [0, 1, 2] and all(r["shots"] == 0 for r in records)
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert [f["attempts"] for f in failures] == [2, 2, 2] and all("--shots 40" in f["error"] for f in failures)
