"""Concurrent writers of one results.json (two benchmarks with the same --out, a sweep's workers,
parallel ``mmalign eval``): no record lost, nothing corrupted, even when writers are killed."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import malformed
from mmalign.errors import DataError
from mmalign.records.store import append_result, read_results

CTX = multiprocessing.get_context("fork")  # the writers only append JSON; fork starts them fast


def _writer(path: str, writer: int, count: int) -> None:
    for i in range(count):
        append_result(path, {"dataset": "CONCURRENT", "setting": "gzsl", "seed": writer, "shots": i, "H": float(i)})


def _per_writer(records: list[dict]) -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {}
    for r in records:
        seen.setdefault(r["seed"], []).append(r["shots"])
    return seen


def test_results_concurrent_appends_lose_no_record(tmp_path):
    path = tmp_path / "results.json"
    append_result(path, malformed.PRIOR_RESULTS[0])
    procs = [CTX.Process(target=_writer, args=(str(path), w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = read_results(path)
    assert len(records) == 201 and records[0] == malformed.PRIOR_RESULTS[0]
    assert {w: sorted(v) for w, v in _per_writer(records[1:]).items()} == {w: list(range(50)) for w in range(4)}


def test_results_writers_killed_at_random_keep_every_finished_record(tmp_path):
    path = tmp_path / "results.json"
    rng = random.Random(11)
    writers, count = 6, 40
    procs = [CTX.Process(target=_writer, args=(str(path), w, count)) for w in range(writers)]
    for p in procs:
        p.start()
    victims = rng.sample(range(writers), 3)
    started = time.monotonic()
    for w in sorted(victims, key=lambda _: rng.random()):
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(procs[w].pid, signal.SIGKILL)
    for p in procs:
        p.join(60)
    assert time.monotonic() - started < 60
    for w, p in enumerate(procs):
        assert p.exitcode == (-signal.SIGKILL if w in victims and p.exitcode != 0 else 0), (w, p.exitcode)
    records = read_results(path)  # still a valid results file
    seen = _per_writer(records)
    for w in range(writers):
        done = seen.get(w, [])
        # a writer's records are exactly its first k appends, in order: none lost, none doubled
        assert done == list(range(len(done))), (w, done)
        if w not in victims:
            assert len(done) == count
    assert sum(len(v) for v in seen.values()) == len(records)
    append_result(path, malformed.PRIOR_RESULTS[0])  # a killed writer's lock does not block the next one
    assert len(read_results(path)) == len(records) + 1


def test_results_append_refuses_non_finite_scores(tmp_path):
    path = tmp_path / "results.json"
    append_result(path, malformed.PRIOR_RESULTS[0])
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"refusing to record a wrong result: key 'H' must be a finite number"):
        append_result(path, {**malformed.PRIOR_RESULTS[0], "H": float("nan")})
    assert path.read_bytes() == before


def test_results_concurrent_cli_evals_on_one_checkpoint_keep_every_record(tmp_path):
    ckpt = malformed.make_checkpoint(tmp_path / "base")
    (ckpt / "results.json").write_text(json.dumps(malformed.PRIOR_RESULTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    runs, shots = 6, ["0", "1"]
    procs = [subprocess.Popen([sys.executable, "-m", "mmalign.cli", "eval", str(ckpt), "--policy", "test",
                               "--seed", str(seed), "--shots", *shots],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for seed in range(runs)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    records = read_results(ckpt / "results.json")
    # the earlier release's record is kept (converted to the current schema; the original file beside it)
    assert json.loads((ckpt / "results.v1.json").read_text()) == malformed.PRIOR_RESULTS
    assert (records[0]["seed"], records[0]["metrics"]["H"]) == (malformed.PRIOR_RESULTS[0]["seed"], malformed.PRIOR_RESULTS[0]["H"])
    got = sorted((r["seed"], r["shots"]) for r in records[1:])
    assert got == sorted((seed, int(k)) for seed in range(runs) for k in shots)
