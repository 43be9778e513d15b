"""The success paths of the command line: ``mmalign eval``, ``mmalign data download`` (against a
loopback server) and ``mmalign benchmark cub-text``, each compared with what the library gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import malformed
import mmalign
from mmalign.cli import main
from mmalign.datasets import load_class_level, load_dataset
from mmalign.datasets.matfile import write_mat
from mmalign.protocols import evaluate
from mmalign.runs import DataSpec, load_data
from conftest import REAL_DATA
from loopback import LoopbackServer, zip_bytes

# -- mmalign eval ----------------------------------------------------------------------------------

SCORES = ("S", "U", "H", "top1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint trained by ``mmalign train`` (10 epochs, tiny networks) and its data folder."""
    root = tmp_path_factory.mktemp("eval")
    folder = malformed.write_dataset(root / "data")
    cfg = malformed.write_toml(root / "run.toml", malformed.run_config(folder, seed=2))
    assert main(["train", str(cfg), "--out", str(root / "ckpt"), "--epochs", "10", "--no-progress"]) == 0
    return root / "ckpt", folder


def test_cli_eval_records_each_shot_as_the_library_scores_it(checkpoint, capsys):
    ckpt, folder = checkpoint
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--policy", "test", "--shots", "0", "2"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    saved = json.loads((ckpt / "results.json").read_text())
    assert [(r["setting"], r["shots"], r["seed"]) for r in saved] == [("gzsl", 0, 2), ("gzsl", 2, 2)]
    assert [r["shots"] for r in printed] == [0, 2]
    aligner, data = mmalign.Aligner.load(ckpt), load_data(DataSpec(dataset=str(folder)))
    for record, line in zip(saved, printed):
        assert record["checkpoint"] == str(ckpt) and record["dataset"] == str(folder)
        assert record["policy"] == "test" and record["selection"]["warning"].startswith("epochs selected on the test")
        # the training seed drives the protocol unless --seed is given
        expected = evaluate(aligner, data, "gzsl", record["shots"], policy="test", seed=2)
        for key in ("S", "U", "H", "classifier_epochs", "train_latents"):
            assert record[key] == expected[key], key
        assert {k: line[k] for k in ("S", "U", "H")} == {k: record[k] for k in ("S", "U", "H")}
    assert all(r["U"] > 0 for r in saved)                      # scores, not a degenerate all-zero result


def test_cli_eval_zsl_with_a_seed_appends_to_the_results(checkpoint, capsys):
    ckpt, folder = checkpoint
    before = json.loads((ckpt / "results.json").read_text()) if (ckpt / "results.json").exists() else []
    assert main(["eval", str(ckpt), "--setting", "zsl", "--shots", "1", "--seed", "5", "--policy", "test"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((ckpt / "results.json").read_text())
    assert saved[:-1] == before and (saved[-1]["setting"], saved[-1]["shots"], saved[-1]["seed"]) == ("zsl", 1, 5)
    expected = evaluate(mmalign.Aligner.load(ckpt), load_data(DataSpec(dataset=str(folder))), "zsl", 1,
                        policy="test", seed=5)
    assert line["top1"] == saved[-1]["top1"] == expected["top1"] and "S" not in line


# -- mmalign data download -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> bytes:
    """A zip in the layout of the xlsa17 release: the real CUB att_splits.mat and a res101.mat with
    the real CUB labels and 2-d features."""
    labels = np.load(REAL_DATA / "cub_labels.npz")["labels"].astype(np.float64) + 1
    features = np.random.default_rng(0).random((2, labels.size))
    res101 = write_mat(tmp_path_factory.mktemp("release") / "res101.mat",
                       {"features": features, "labels": labels.reshape(-1, 1)})
    return zip_bytes({
        "xlsa17/README.txt": b"Xian et al.",
        "xlsa17/data/CUB/att_splits.mat": (REAL_DATA / "xlsa17/CUB/att_splits.mat").read_bytes(),
        "xlsa17/data/CUB/res101.mat": res101.read_bytes(),
    })


def _download(root: Path, url: str, *extra: str) -> list[str]:
    return ["data", "download", "xlsa17", "--data-dir", str(root), "--url", url, *extra]


def test_cli_data_download_shows_progress_and_unpacks_a_usable_release(tmp_path, release, capsys):
    root = tmp_path / "root"
    with LoopbackServer(release) as srv:
        assert main(_download(root, srv.url, "--sha256", hashlib.sha256(release).hexdigest())) == 0
    err = capsys.readouterr().err
    assert "xlsa17.zip" in err and "100%" in err                # the progress bar
    assert err.strip().splitlines()[-1] == f"xlsa17 is ready in {root}"
    assert srv.ranges == [None]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "CUB/att_splits.mat", "CUB/res101.mat"]               # archive removed, only the data folders kept
    assert load_class_level("CUB", root).meta["warnings"] == []  # byte-identical: passes the card's checksum
    data = load_dataset("CUB", root, skip_card_check=True, use_cache=False)
    assert data.num_samples == 11788 and data.sample_features["features"].shape == (11788, 2)


def test_cli_data_download_resumes_a_partial_file_with_a_range_request(tmp_path, release, capsys):
    root = tmp_path / "root"
    root.mkdir()
    half = len(release) // 2
    (root / "xlsa17.zip.part").write_bytes(release[:half])
    with LoopbackServer(release) as srv:
        assert main(_download(root, srv.url, "--no-progress")) == 0
    assert srv.ranges == [f"bytes={half}-"]
    err = capsys.readouterr().err
    assert "100%" not in err and err.strip() == f"xlsa17 is ready in {root}"
    assert (root / "CUB" / "att_splits.mat").read_bytes() == (REAL_DATA / "xlsa17/CUB/att_splits.mat").read_bytes()
    assert not (root / "xlsa17.zip.part").exists()


def test_cli_data_download_refuses_a_checksum_mismatch(tmp_path, release, capsys):
    root = tmp_path / "root"
    with LoopbackServer(release) as srv:
        assert main(_download(root, srv.url, "--no-progress", "--sha256", "ab" * 32)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mmalign: error: {root / 'xlsa17.zip'}: sha256 ")
    assert f"does not match the expected {'ab' * 32}" in err[0]
    assert not (root / "CUB").exists() and not (root / "xlsa17.zip").exists()
    assert main(_download(root, "http://127.0.0.1:9/x.zip", "--sha256", "xyz")) == 2
    assert "--sha256 must be 64 hexadecimal digits" in capsys.readouterr().err


# -- mmalign benchmark cub-text --------------------------------------------------------------------


def test_cli_benchmark_cub_text_tiny_run_prints_and_saves_the_library_result(tmp_path, capsys):
    from mmalign.retrieval.cub_text import run_cub_text

    out = tmp_path / "out"
    argv = ["benchmark", "cub-text", "--seeds", "1", "--first-seed", "3", "--epochs", "1", "--modalities", "att", "wiki",
            "--baselines", "ridge", "--text-vectors", "shipped", "--device", "cpu", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert saved["meta"]["seeds"] == [3] and saved["meta"]["epochs"] == 1
    assert saved["meta"]["modalities"] == ["att", "wiki"] and saved["meta"]["text_vectors"]["source"] == "shipped"
    assert "| att → wiki | ridge |" in stdout and "aligner (M=2)" in stdout and "cca" not in stdout
    assert stdout.strip().endswith(f"results: {out / 'results.json'}")
    expected = run_cub_text(seeds=[3], epochs=1, modalities=("att", "wiki"), baselines=("ridge",), recompute="never",
                            progress=False, log=lambda msg: None)
    assert saved["records"] == json.loads(json.dumps(expected["records"]))
    assert main(["benchmark", "cub", "--modalities", "att", "wiki", "--synthetic"]) == 2
    assert "--modalities apply to 'mmalign benchmark cub-text' only" in capsys.readouterr().err
