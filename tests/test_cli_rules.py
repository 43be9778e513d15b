"""Rules every command follows: no abbreviated flags anywhere, and saved models keyed like records
(one model per configuration and seed, refused or replaced under --resume/--force)."""

from __future__ import annotations

import argparse
import types
from pathlib import Path

import pytest

import mmalign
from mmalign.benchmarks import all_benchmarks
from mmalign.cli import build_parser, main
from mmalign.cli.benchmark import benchmark_parser
from mmalign.plugins import add_plugin, get_catalog, remove_plugin
from mmalign.records.files import load_records

from conftest import make_toy_data


@mmalign.hookimpl
def register_datasets(register):
    register("toyset", lambda root: make_toy_data(seed=3, classes=10, per_class=12, unseen=3))


@pytest.fixture
def toyset():
    add_plugin(types.SimpleNamespace(register_datasets=register_datasets), "test-rules-toyset")
    yield
    remove_plugin("test-rules-toyset")


def _every_parser(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_no_parser_accepts_abbreviated_flags():
    parsers = list(_every_parser(build_parser()))
    parsers += [benchmark_parser(b) for b in all_benchmarks(get_catalog())]
    assert len(parsers) > 10
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_seed_is_not_taken_for_seeds(toyset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "toyset", "--seed", "3", "--epochs", "1", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --seed 3" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def _bench(tmp_path: Path, *flags: str) -> int:
    return main(["benchmark", "toyset", "--epochs", "1", "--classifier-epochs", "1", "--no-progress", "--threads", "1",
                 "--device", "cpu", "--save-models", "--out", str(tmp_path), *flags])


def _models(tmp_path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((tmp_path / "models").rglob("model.safetensors"))}


def test_saved_models_are_keyed_by_config_and_seed(toyset, tmp_path):
    assert _bench(tmp_path) == 0
    first = _models(tmp_path)
    assert _bench(tmp_path, "--epochs", "2") == 0  # another config: its own model, the first one untouched
    both = _models(tmp_path)
    assert len(first) == 1 and len(both) == 2 and all(both[p] == b for p, b in first.items())
    records = load_records(tmp_path / "results.json")
    assert sorted(r.epochs_vae for r in records) == [1, 2]


def test_saved_model_of_the_same_config_is_refused_or_replaced(toyset, tmp_path, capsys):
    assert _bench(tmp_path) == 0
    before = _models(tmp_path)
    (tmp_path / "results.json").unlink()  # the record gone, the model still there: refused all the same
    assert _bench(tmp_path) == 2
    err = capsys.readouterr().err
    assert "already holds the saved model" in err and "--resume" in err and "--force" in err
    assert _models(tmp_path) == before
    assert _bench(tmp_path, "--force") == 0
    assert list(_models(tmp_path)) == list(before)


def test_retrieval_benchmark_prints_its_compact_table_and_names_table_md(tmp_path, capsys):
    assert main(["benchmark", "cub-text", "--seeds", "1", "--epochs", "1", "--modalities", "att", "sent",
                 "--baselines", "ridge", "--text-vectors", "shipped", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("benchmark  among"):out.index("wall seconds")].strip().splitlines()
    rows = table[2:]
    # att->sent and sent->att, by ridge and by the aligner, among the unseen classes and among all
    assert len(rows) == 8 and all(row.startswith("cub-text") for row in rows)
    assert sum("unseen classes" in row for row in rows) == 4 and sum("all classes" in row for row in rows) == 4
    assert "no reference" not in out and " gzsl " not in out
    assert f"table: {tmp_path / 'table.md'}" in out and out.rstrip().endswith(f"results: {tmp_path / 'results.json'}")
