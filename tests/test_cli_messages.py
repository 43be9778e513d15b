"""What a new user meets at the command line: one-line errors in the CLI's own words, data-set
names in any case, eval's flags, train's output folder rules, file permissions, cub-text's flags."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
from pathlib import Path

import pytest

import malformed
from mmalign.atomic import write_json_atomic
from mmalign.cli import CLI_NAMES, main
from mmalign.cli.benchmark import benchmark_name
from mmalign.records.files import load_records
from mmalign.resume import STATE_FILE

ROOT = Path(__file__).resolve().parents[1]


def _err(capsys) -> str:
    return capsys.readouterr().err


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_cli_usage_error_is_one_line_with_a_help_hint(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "cub", "--seeds", "three"])
    assert exit_.value.code == 2
    line = _one_line(_err(capsys))
    assert "--seeds" in line and "see 'mmalign benchmark --help'" in line and "usage:" not in line


def test_cli_dataset_names_accept_any_case_and_suggest_the_closest(capsys):
    assert benchmark_name("CUB") == "cub" and benchmark_name("Cub-Text") == "cub-text"
    with pytest.raises(SystemExit):
        main(["benchmark", "cbu"])
    line = _one_line(_err(capsys))
    assert "unknown data set 'cbu' (did you mean 'cub'?)" in line


def test_cli_missing_data_dir_is_reported_as_a_missing_folder_in_flag_names(tmp_path, capsys):
    assert main(["benchmark", "CUB", "--data-dir", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    line = _one_line(_err(capsys))
    assert f"{tmp_path / 'nowhere'} does not exist (data root from --data-dir)" in line
    assert "data_dir" not in line.replace(str(tmp_path), "")
    assert main(["benchmark", "CUB", "--data-dir", str(tmp_path), "--no-progress"]) == 2  # exists, files missing
    line = _one_line(_err(capsys)).replace(str(tmp_path), "")
    assert "missing file(s) res101.mat, att_splits.mat" in line and "--data-dir" in line
    assert "data_dir" not in line and ".." not in line


def test_cli_names_table_matches_phrases_the_library_uses():
    table = ROOT / "mmalign" / "cli" / "__init__.py"  # where CLI_NAMES itself is written
    source = "\n".join(p.read_text() for p in (ROOT / "mmalign").rglob("*.py") if p != table)
    source = re.sub(r'"\s*\n\s*f?"', "", source)  # join implicitly concatenated string literals
    missing = [phrase for phrase in CLI_NAMES if phrase not in source]
    assert not missing, f"CLI_NAMES maps phrases the library no longer uses: {missing}"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    folder = malformed.write_dataset(root / "data", "toyC")
    cfg = copy.deepcopy(malformed.run_config(folder))  # run_config shares its nested tables
    cfg["aligner"]["training"]["epochs"] = 2
    return malformed.write_toml(root / "cfg.toml", cfg)


def _train(cfg: Path, out: Path, *extra: str) -> int:
    return main(["train", str(cfg), "--out", str(out), "--no-progress", *extra])


def test_train_refuses_an_existing_checkpoint_without_force(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(config_file, out) == 0
    assert not (out / STATE_FILE).exists()
    (out / "results.json").write_text("[]")
    assert _train(config_file, out) == 2
    assert "already holds a checkpoint; pass --resume to continue it or --force to overwrite it" in _err(capsys)
    assert _train(config_file, out, "--force") == 0
    assert not (out / "results.json").exists(), "--force leaves no stale results beside the new checkpoint"


def test_train_removes_the_training_state_unless_keep_state(config_file, tmp_path, capsys):
    out = tmp_path / "kept"
    assert _train(config_file, out, "--checkpoint-every", "1", "--keep-state") == 0
    assert (out / STATE_FILE).exists() and "kept the training state" in capsys.readouterr().out
    removed = tmp_path / "removed"
    assert _train(config_file, removed, "--checkpoint-every", "1") == 0
    assert not (removed / STATE_FILE).exists() and (removed / "model.safetensors").exists()


def test_train_resume_says_where_it_starts(config_file, tmp_path, capsys):
    out = tmp_path / "fresh"
    assert _train(config_file, out, "--resume") == 0
    assert f"--resume: no training state in {out}; starting from scratch" in _err(capsys)
    assert _train(config_file, out, "--resume") == 2  # finished, state removed
    assert "holds a finished checkpoint and no training state" in _err(capsys)
    killed = tmp_path / "killed"
    assert _train(config_file, killed, "--checkpoint-every", "1", "--keep-state") == 0
    (killed / "config.json").unlink()  # what a run killed after its last state save leaves
    capsys.readouterr()
    assert _train(config_file, killed, "--checkpoint-every", "1", "--resume") == 0
    assert "resumed from epoch 2 of 2" in capsys.readouterr().out


def test_train_interrupt_message_tells_how_to_resume(config_file, tmp_path, capsys, monkeypatch):
    import mmalign

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmalign.Aligner, "fit", interrupted)
    assert _train(config_file, tmp_path / "int", "--checkpoint-every", "5") == 130
    line = _one_line(_err(capsys))
    assert "interrupted" in line and "--checkpoint-every 5 --resume" in line


def test_benchmark_interrupt_message_tells_how_to_resume(tmp_path, capsys, monkeypatch):
    import mmalign.benchmarks.classification as classification

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classification, "run_benchmark", interrupted)
    assert main(["benchmark", "cub", "--synthetic", "--out", str(tmp_path)]) == 130
    line = _one_line(_err(capsys))
    assert str(tmp_path / "results.json") in line and "--resume skips them" in line


@pytest.fixture(scope="module")
def checkpoint(config_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "run"
    assert _train(config_file, out) == 0
    return out


@pytest.mark.parametrize("argv, expected", [
    (["--shots", "-1"], "--shots must be non-negative, got -1"),
    (["--shots", "1", "1"], "--shots lists a count twice"),
    (["--shots", "10", "--classifier-epochs", "2"], "10-shot split impossible: unseen class 8"),
    (["--threads", "0", "--classifier-epochs", "2"], "--threads must be at least 1"),
    (["--policy", "val", "--classifier-epochs", "2"], "cannot be combined with --policy val/test"),
    ([], "has no fixed classifier epochs"),
    (["--shots", "1"], "or --classifier-epochs N"),
    (["--policy", "val"], "use --policy fixed or --classifier-epochs N"),
])
def test_eval_validates_its_flags_like_benchmark(checkpoint, capsys, argv, expected):
    assert main(["eval", str(checkpoint), *argv]) == 2
    assert expected in _one_line(_err(capsys))


def test_eval_runs_with_manual_epochs_and_threads(checkpoint, capsys):
    assert main(["eval", str(checkpoint), "--classifier-epochs", "2", "--threads", "1", "--shots", "0", "1",
                 "--force"]) == 0
    rows = [r.model_dump() for r in load_records(checkpoint / "results.json")][-2:]
    assert [(r["shots"], r["policy"], r["classifier_epochs"]) for r in rows] == [(0, "manual", 2), (1, "manual", 2)]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.parametrize("flag", [["--synthetic"], ["--shots", "1"], ["--setting", "zsl"], ["--policy", "val"],
                                  ["--classifier-epochs", "3"], ["--side-info", "sentences"], ["--stack-seeds"],
                                  ["--save-models"]])
def test_benchmark_cub_text_rejects_flags_that_do_not_apply(capsys, flag):
    assert main(["benchmark", "cub-text", *flag]) == 2
    line = _one_line(_err(capsys))
    assert f"benchmark cub-text does not take {flag[0]}" in line


def test_benchmark_cub_text_passes_on_what_applies(monkeypatch, tmp_path):
    seen = {}

    class Called(BaseException):  # not an Exception: the CLI turns those into one line
        pass

    def fake_run(**kwargs):
        seen.update(kwargs)
        raise Called

    import mmalign.retrieval.cub_text as cub_text

    monkeypatch.setattr(cub_text, "run_cub_text", fake_run)
    with pytest.raises(Called):
        main(["benchmark", "cub-text", "--engine", "reference", "--reparameterization", "standard", "--epochs", "3",
              "--seeds", "2", "--first-seed", "4", "--device", "cpu", "--out", str(tmp_path), "--recipe", "cada_vae"])
    assert seen["aligner_overrides"] == {"training": {"engine": "reference", "precision": "fp32"},
                                         "reparameterization": "standard"}
    assert list(seen["seeds"]) == [4, 5] and seen["epochs"] == 3 and seen["device"] == "cpu"


def test_eval_policy_val_trains_a_selector_on_the_validation_classes(tmp_path, capsys):
    data = malformed.small_data(per_class=16)
    seen = data.splits["trainval"]
    labels = data.labels[seen]
    data.splits["train"] = seen[labels < 5]   # 5 train classes, 3 val classes, all seen
    data.splits["val"] = seen[labels >= 5]
    folder = malformed.write_dataset(tmp_path / "data", "toyV", data)
    cfg = malformed.write_toml(tmp_path / "cfg.toml", malformed.run_config(folder))
    out = tmp_path / "run"
    assert _train(cfg, out) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--policy", "val", "--max-classifier-epochs", "3", "--no-progress"]) == 0
    saved = load_records(out / "results.json")[-1].model_dump()
    assert saved["policy"] == "val" and 1 <= saved["classifier_epochs"] <= 3
    assert saved["details"]["selection"]["on"] == "val" and saved["details"]["selection"]["data"].endswith("/val")


def test_cub_text_says_whether_the_sentences_were_re_encoded_or_read_from_the_cache(monkeypatch):
    import numpy as np

    import mmalign.text
    import mmalign.text.model
    from mmalign.retrieval.cub_data import load_cub_text
    from mmalign.retrieval.cub_text import wiki_vectors

    class FakeEncoder:
        calls = 0

        def __init__(self, progress=True):
            self.forward_calls = FakeEncoder.calls
            self.resolved = type("R", (), {"identity": "fake", "name": "fake-model"})()

        def encode(self, texts):
            rows = np.random.default_rng(0).random((len(texts), 384)).astype(np.float32)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    monkeypatch.setattr(mmalign.text, "TextEncoder", FakeEncoder)
    bundle = load_cub_text()
    for calls, phrase in ((0, "read the cached encodings of the Wikipedia sentences"),
                          (3, "re-encoded the Wikipedia sentences")):
        FakeEncoder.calls = calls
        lines: list[str] = []
        with pytest.warns(UserWarning, match="differ from the shipped ones"):
            _, info = wiki_vectors(bundle, "always", log=lines.append)
        assert phrase in lines[0] and info["from_cache"] is (calls == 0)
