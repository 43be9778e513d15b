"""The success paths of the command line: ``mmalign eval``, ``mmalign data download`` (against a
loopback server) and ``mmalign benchmark cub-text``, each compared with what the library gives."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

import malformed
import mmalign
from mmalign.cli import main
from mmalign.datasets import load_class_level, load_dataset
from mmalign.datasets.matfile import write_mat
from mmalign.protocols import evaluate
from mmalign.records.files import load_records
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


def table_rows(stdout: str) -> dict[tuple[str, str], str]:
    """The printed table's rows by (shots, metric): the mean column."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if "aligner" in line]
    return {(cells[2], cells[6]): cells[7] for cells in rows}


def test_cli_eval_records_each_shot_as_the_library_scores_it(checkpoint, capsys):
    ckpt, folder = checkpoint
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--policy", "test", "--shots", "0", "2"]) == 0
    printed = table_rows(capsys.readouterr().out)
    saved = json.loads((ckpt / "results.json").read_text())
    assert [(r["setting"], r["shots"], r["seed"]) for r in saved] == [("gzsl", 0, 2), ("gzsl", 2, 2)]
    aligner, data = mmalign.Aligner.load(ckpt), load_data(DataSpec(dataset=str(folder)))
    for record in saved:
        assert record["details"]["checkpoint"] == str(ckpt) and record["dataset"] == folder.name.upper()
        assert record["policy"] == "test" and record["details"]["selection"]["warning"].startswith("epochs selected on the test")
        # the training seed drives the protocol unless --seed is given
        expected = evaluate(aligner, data, "gzsl", record["shots"], policy="test", seed=2)
        assert record["metrics"] == {k: expected[k] for k in ("S", "U", "H")}
        assert record["classifier_epochs"] == expected["classifier_epochs"]
        assert record["details"]["train_latents"] == expected["train_latents"]
        for k in ("S", "U", "H"):
            assert printed[(str(record["shots"]), k)] == f"{record['metrics'][k]:.2f} ± 0.00"
    assert all(r["metrics"]["U"] > 0 for r in saved)          # scores, not a degenerate all-zero result


def test_cli_eval_zsl_with_a_seed_appends_to_the_results(checkpoint, capsys):
    ckpt, folder = checkpoint
    before = json.loads((ckpt / "results.json").read_text()) if (ckpt / "results.json").exists() else []
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--setting", "zsl", "--shots", "1", "--seed", "5", "--policy", "test"]) == 0
    printed = table_rows(capsys.readouterr().out)
    saved = json.loads((ckpt / "results.json").read_text())
    assert saved[:-1] == before and (saved[-1]["setting"], saved[-1]["shots"], saved[-1]["seed"]) == ("zsl", 1, 5)
    expected = evaluate(mmalign.Aligner.load(ckpt), load_data(DataSpec(dataset=str(folder))), "zsl", 1,
                        policy="test", seed=5)
    assert saved[-1]["metrics"] == {"top1": expected["top1"]}
    assert printed == {("1", "top1"): f"{expected['top1']:.2f} ± 0.00"}


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
    saved = load_records(out / "results.json")
    assert {r.seed for r in saved} == {3} and {r.epochs_vae for r in saved if r.method == "aligner"} == {1}
    assert {tuple(sorted(r.modalities)) for r in saved} == {("att", "wiki")}
    assert all(r.details["text_vectors"]["source"] == "shipped" for r in saved)
    assert "ridge att->wiki" in stdout and "aligner att+wiki: att->wiki" in stdout and "cca" not in stdout
    assert "| att → wiki | ridge |" in (out / "table.md").read_text()
    assert stdout.strip().endswith(f"results: {out / 'results.json'}")
    expected = run_cub_text(seeds=[3], epochs=1, modalities=("att", "wiki"), baselines=("ridge",), recompute="never",
                            progress=False, log=lambda msg: None)
    strip = {"seconds", "history", "device_name"}  # wall times differ between runs
    assert [r.model_dump(exclude=strip) for r in saved] == [r.model_dump(exclude=strip) for r in expected]
    assert main(["benchmark", "cub", "--modalities", "att", "wiki", "--synthetic"]) == 2
    assert "--modalities apply to 'mmalign benchmark cub-text' only" in capsys.readouterr().err
