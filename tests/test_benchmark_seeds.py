"""`mmalign benchmark --seeds N` with the seeds' VAEs trained together (stacked) gives each seed the
result of its own run."""

from __future__ import annotations

import malformed
import pytest

from mmalign.benchmarks.classification import BenchmarkRequest, run_benchmark
from mmalign.errors import ConfigError
from mmalign.runs import DataSpec


def request(tmp_path, out, **kw):
    folder = malformed.write_dataset(tmp_path / "data")
    return BenchmarkRequest(dataset="toy", data=DataSpec(dataset=str(folder)), seeds=[0, 1, 2], epochs=2,
                            device="cpu", policy="manual", classifier_epochs=3, out=tmp_path / out, progress=False, **kw)


def test_benchmark_stacked_seeds_equal_separate_runs(tmp_path):
    stacked = run_benchmark(request(tmp_path, "stacked", stack_seeds=True), log=lambda line: None)
    separate = run_benchmark(request(tmp_path, "separate", stack_seeds=False), log=lambda line: None)
    assert [r.seed for r in stacked] == [r.seed for r in separate] == [0, 1, 2]
    assert [r.details["seeds_stacked"] for r in stacked] == [3, 3, 3]
    assert [r.details["seeds_stacked"] for r in separate] == [1, 1, 1]
    for a, b in zip(stacked, separate):
        for metric in ("S", "U", "H"):
            assert a.metrics[metric] == pytest.approx(b.metrics[metric], abs=1e-6), (a.seed, metric)
    assert len({(r.metrics["S"], r.metrics["U"]) for r in stacked}) > 1  # the seeds are different runs


def test_benchmark_stacked_seeds_need_engine_auto(tmp_path):
    with pytest.raises(ConfigError, match="--stack-seeds needs --engine auto"):
        run_benchmark(request(tmp_path, "x", stack_seeds=True, engine="reference"), log=lambda line: None)
