"""The front of the house: ``--recipe`` reaches the classifier, the recipe is loaded once per
command, and a benchmark or a command is added by one plugin file without touching the CLI."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import pytest

import mmalign
import mmalign.recipes as recipes
from mmalign.benchmarks import Benchmark
from mmalign.cli import main
from mmalign.plugins import add_plugin, remove_plugin
from mmalign.records.files import load_records
from mmalign.records.provenance import versions
from mmalign.records.schema import ResultRecord

from conftest import make_toy_data

CADA = Path(recipes.registry_root()) / "recipes" / "cada_vae.toml"


def toy_reader(root):
    return make_toy_data(seed=3, classes=10, per_class=12, unseen=3)


@mmalign.hookimpl
def register_datasets(register):
    register("toyset", toy_reader)


@pytest.fixture
def toyset():
    add_plugin(types.SimpleNamespace(register_datasets=register_datasets), "test-toyset")
    yield
    remove_plugin("test-toyset")


def recipe_file(tmp_path: Path, name: str, gzsl_epochs: int, seen_latents: int = 200) -> Path:
    """cada_vae's recipe under another name, with a classifier table for the toy data set."""
    text = CADA.read_text().replace('name = "cada_vae"', f'name = "{name}"')
    text = text.replace("gzsl = [200, 0, 400, 0]", f"gzsl = [{seen_latents}, 0, 400, 0]")
    text += f"\n[classifier.epochs.TOYSET]\ngzsl = [{gzsl_epochs}, 1, 1, 1, 1]\nzsl = [1, 1, 1, 1, 1]\n"
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def run_toy(tmp_path: Path, recipe: Path, out: str) -> ResultRecord:
    assert main(["benchmark", "toyset", "--epochs", "1", "--no-progress", "--threads", "1", "--device", "cpu",
                 "--recipe", str(recipe), "--out", str(tmp_path / out)]) == 0
    (record,) = load_records(tmp_path / out / "results.json")
    return record


def test_recipe_flag_changes_what_the_classifier_trains_with(toyset, tmp_path):
    three = run_toy(tmp_path, recipe_file(tmp_path, "three_epochs", 3, seen_latents=20), "a")
    five = run_toy(tmp_path, recipe_file(tmp_path, "five_epochs", 5, seen_latents=40), "b")
    assert (three.recipe, three.classifier_epochs) == ("three_epochs", 3)
    assert (five.recipe, five.classifier_epochs) == ("five_epochs", 5)
    # the recipe's latent counts too: 7 seen classes x 20 (or 40) + 3 unseen x 400
    assert three.details["train_latents"] == 7 * 20 + 3 * 400
    assert five.details["train_latents"] == 7 * 40 + 3 * 400


def test_recipe_is_loaded_once_from_the_command_line_to_training(toyset, tmp_path, monkeypatch):
    reads = []
    real = recipes._read_recipe
    monkeypatch.setattr(recipes, "_read_recipe", lambda path: reads.append(path) or real(path))
    recipes._registry_recipe.cache_clear()
    run_toy(tmp_path, recipe_file(tmp_path, "once", 2), "once")
    assert [p.name for p in reads] == ["once.toml"]


def test_recipe_travels_with_the_checkpoint_into_eval(toyset, tmp_path):
    recipe = recipe_file(tmp_path, "saved_with_model", 4)
    config = tmp_path / "run.toml"
    config.write_text(f'[data]\ndataset = "toyset"\n[aligner]\nrecipe = "{recipe}"\ndevice = "cpu"\n'
                      "training = { epochs = 1 }\n")
    assert main(["train", str(config), "--out", str(tmp_path / "ckpt"), "--no-progress"]) == 0
    recipe.unlink()  # eval must not need the file: the checkpoint holds the recipe
    assert main(["eval", str(tmp_path / "ckpt"), "--threads", "1"]) == 0
    (record,) = load_records(tmp_path / "ckpt" / "results.json")
    assert (record.recipe, record.classifier_epochs) == ("saved_with_model", 4)


def test_unknown_recipe_names_the_known_ones(capsys):
    assert main(["benchmark", "cub", "--synthetic", "--recipe", "cada_vea"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'cada_vea'" in err and "did you mean 'cada_vae'" in err and len(err.splitlines()) == 1


def test_recipes_command_lists_families_sources_and_published_numbers(capsys):
    assert main(["recipes", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    cada = rows["cada_vae"]
    assert set(cada["loss_families"]) >= {"kl", "cross", "align"} and "CVPR 2019" in cada["source"]
    assert {"dataset": "CUB", "setting": "gzsl", "shots": 0, "side_info": "attributes", "U": 51.6, "S": 53.5,
            "H": 52.4} in cada["references"]["results"]


# -- a benchmark and a command from one plugin file, no CLI code touched ------------------------

class NearestMeanBenchmark(Benchmark):
    """Top-1 of the unseen classes' images against their attributes in a trained aligner's latent space."""

    name = "toy-retrieval"
    summary = "a test plugin's benchmark"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--classes", type=int, default=10)

    def request(self, args, recipe):
        return types.SimpleNamespace(out=Path(args.out), recipe=recipe, classes=args.classes,
                                     seeds=range(args.first_seed, args.first_seed + args.seeds))

    def run(self, request, log):
        data = make_toy_data(classes=request.classes, unseen=3)
        records = []
        for seed in request.seeds:
            aligner = mmalign.Aligner(["image_features", "attributes"], {"seed": seed, "device": "cpu",
                                      "latent_size": 8, "training": {"epochs": 2}}, recipe=request.recipe)
            aligner.fit(data, progress=False)
            unseen = np.unique(data.labels[data.splits["test_unseen"]])
            rows = data.splits["test_unseen"]
            idx, _ = aligner.retrieve("image_features", data.sample_features["features"][rows], "attributes",
                                      data.class_features["attributes"][unseen], k=1)
            top1 = float(np.mean(unseen[np.asarray(idx)[:, 0]] == data.labels[rows])) * 100
            records.append(ResultRecord(command="benchmark", dataset=self.name, setting="zsl", seed=seed,
                                        recipe=request.recipe.name, versions=versions(), metrics={"top1": top1}))
            log(f"{self.name} seed {seed}: top-1 {top1:.1f}")
        return records


@mmalign.hookimpl
def register_benchmarks(register):
    register(NearestMeanBenchmark())


@mmalign.hookimpl
def register_commands(subparsers):
    p = subparsers.add_parser("toy-hello", help="a test plugin's command")
    p.add_argument("--who", default="world")
    p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)


@pytest.fixture
def toy_front():
    plugin = types.SimpleNamespace(register_benchmarks=register_benchmarks, register_commands=register_commands)
    add_plugin(plugin, "test-front")
    yield
    remove_plugin("test-front")


def test_a_plugin_adds_a_benchmark_and_a_command_without_cli_code(toy_front, tmp_path, capsys):
    assert main(["benchmark", "TOY-RETRIEVAL", "--seeds", "2", "--classes", "9", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "toy-retrieval seed 1: top-1" in out and out.rstrip().endswith(f"results: {tmp_path / 'results.json'}")
    assert main(["toy-hello", "--who", "plugin"]) == 0
    assert capsys.readouterr().out.strip() == "hello plugin"
    assert main(["benchmark", "toy-retrieval", "--synthetic"]) == 2
    assert "--synthetic apply to 'mmalign benchmark" in capsys.readouterr().err
