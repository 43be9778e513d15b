"""What ``benchmark`` and ``eval`` write and print: one record per (config, seed), refused reruns
naming --resume and --force, the same table, files that validate against the published schema."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

import malformed
from mmalign.cli import main
from mmalign.records.schema import results_json_schema


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return malformed.write_dataset(tmp_path_factory.mktemp("results") / "data")


def bench(dataset, out, *extra):
    return main(malformed.benchmark_argv(dataset, out, "--policy", "test", "--max-classifier-epochs", "3",
                                         "--device", "cpu", *extra))


def test_benchmark_rerun_is_refused_naming_resume_and_force(dataset, tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench(dataset, out) == 0
    printed = capsys.readouterr().out
    assert "mean ± std" in printed and f"results: {out / 'results.json'}" in printed
    first = (out / "results.json").read_text()
    assert bench(dataset, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed 0 is already recorded" in err[0] and "--resume" in err[0] and "--force" in err[0]
    assert (out / "results.json").read_text() == first
    assert bench(dataset, out, "--resume") == 0
    assert "resume: seed 0, 0 shots already in" in capsys.readouterr().out
    assert bench(dataset, out, "--force") == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 1, "--force replaces the record"
    capsys.readouterr()
    assert bench(dataset, out, "--seeds", "2", "--resume") == 0
    table = capsys.readouterr().out
    records = json.loads((out / "results.json").read_text())
    assert sorted(r["seed"] for r in records) == [0, 1]
    rows = [re.split(r"\s{2,}", line) for line in table.splitlines() if line.startswith("TOY ") and "aligner" in line]
    assert len(rows) == 3 and all(cells[5] == "2" for cells in rows)  # U, S, H over two distinct seeds
    jsonschema.validate(records, results_json_schema())
    assert bench(dataset, out, "--resume", "--force") == 2


def test_eval_prints_the_table_and_where_it_wrote(dataset, tmp_path, capsys):
    toml = malformed.write_toml(tmp_path / "cfg.toml", malformed.run_config(dataset))
    ckpt = tmp_path / "ckpt"
    assert main(["train", str(toml), "--out", str(ckpt), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--policy", "test", "--shots", "0", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["dataset", "setting", "shots"] and "mean ± std" in lines[0]
    assert not any(line.startswith("{") for line in lines), "a table, not raw JSON"
    assert lines[-1] == f"results: {ckpt / 'results.json'}"
    records = json.loads((ckpt / "results.json").read_text())
    jsonschema.validate(records, results_json_schema())
    assert [r["shots"] for r in records] == [0, 1] and {r["command"] for r in records} == {"eval"}
    assert all(len(r["history"]) == 1 and r["per_class"]["U"] for r in records)
    for r in records:  # the per-class breakdown is that of the scored classifier (the selected epoch)
        for metric in ("S", "U"):
            assert sum(r["per_class"][metric].values()) / len(r["per_class"][metric]) == pytest.approx(r["metrics"][metric], abs=1e-3)
    assert main(["eval", str(ckpt), "--policy", "test", "--shots", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
