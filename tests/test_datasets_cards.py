"""Dataset cards: schema, checks against real files, refusal on mismatch, skip_card_check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmalign.datasets import (
    check_card,
    list_cards,
    load_card,
    load_class_level,
    load_dataset,
    synthetic_like,
    write_xlsa17_layout,
)
from mmalign.datasets.cards import DatasetCard
from mmalign.datasets.matfile import write_mat
from mmalign.errors import ConfigError, DataError
from conftest import REAL_DATA


def _real_root() -> Path:
    return REAL_DATA / "xlsa17"


def test_cards_all_six_present_and_consistent():
    assert list_cards() == ["APY", "AWA1", "AWA2", "CUB", "FLO", "SUN"]
    for name in list_cards():
        card = load_card(name.lower())
        s = card.splits
        assert s.trainval + s.test_seen + s.test_unseen == card.num_images
        if s.train is not None:
            assert s.train + s.val == s.trainval + s.test_seen  # xlsa17: train/val cover trainval + test_seen
        assert card.feature_dim == 2048


def test_card_rejects_unknown_key():
    raw = load_card("CUB").model_dump()
    raw["num_clases"] = 3
    with pytest.raises(Exception, match="num_clases"):
        DatasetCard.model_validate(raw)


def test_load_card_unknown_name():
    with pytest.raises(ConfigError, match="unknown dataset 'MNIST'.*CUB"):
        load_card("MNIST")


@pytest.mark.parametrize("name", ["APY", "AWA1", "AWA2", "CUB", "FLO", "SUN"])
def test_load_class_level_real_passes_card(name):
    cl = load_class_level(name, _real_root())
    assert cl.meta["warnings"] == [] and cl.meta["card"] == name
    assert cl.num_classes == load_card(name).num_classes


def test_check_card_real_cub_class_files_ok():
    report = check_card(_real_root() / "CUB", load_card("CUB"))
    # res101.mat is absent in the real-data folder: that is the only complaint
    assert report.errors == [f"{_real_root() / 'CUB' / 'res101.mat'}: missing (the CUB card requires it)"]
    assert report.warnings == []


def test_load_class_level_refuses_mismatch_and_skip_warns(tmp_path):
    root = _real_root()
    folder = tmp_path / "SUN"
    folder.mkdir()
    (folder / "att_splits.mat").write_bytes((root / "SUN" / "att_splits.mat").read_bytes())
    load_class_level("SUN", tmp_path)  # an exact copy passes
    with pytest.raises(DataError, match=r"FLO: missing file\(s\) att_splits\.mat"):
        load_class_level("FLO", tmp_path)
    # an AWA1 file where the card expects SUN: attribute dim, class count, splits and checksum differ
    (folder / "att_splits.mat").write_bytes((root / "AWA1" / "att_splits.mat").read_bytes())
    with pytest.raises(DataError) as err:
        load_class_level("SUN", tmp_path)
    msg = str(err.value)
    assert "do not match the dataset card" in msg and "skip_card_check=True" in msg
    assert "att_splits.mat: key 'att': expected shape (102, 717), found (85, 50)" in msg
    assert "sha256" in msg  # SUN's checksum is strict (original xlsa17 file)
    cl = load_class_level("SUN", tmp_path, skip_card_check=True)
    assert cl.num_classes == 50 and any("key 'att'" in w for w in cl.meta["warnings"])


def _synthetic_folder(tmp_path, like="CUB", n=600, name=None):
    data = synthetic_like(like, seed=2, feature_dim=12, num_samples=n)
    return write_xlsa17_layout(data, tmp_path, name or like), data


def test_load_dataset_refuses_card_mismatch(tmp_path):
    _synthetic_folder(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("CUB", tmp_path, use_cache=False)
    msg = str(err.value)
    assert "res101.mat: key 'features': expected shape (2048, 11788), found (12, 600)" in msg
    assert "att_splits.mat: key 'trainval_loc': expected shape (7057, 1)" in msg


def test_load_dataset_skip_card_check_returns_warnings(tmp_path):
    _, data = _synthetic_folder(tmp_path)
    got = load_dataset("cub", tmp_path, skip_card_check=True, use_cache=False)
    assert got.name == "CUB" and got.num_samples == 600
    warnings = got.meta["warnings"]
    assert all(isinstance(w, str) for w in warnings)
    assert any("expected shape (2048, 11788), found (12, 600)" in w for w in warnings)
    assert any("sha256" in w for w in warnings)  # non-strict checksums are warnings
    np.testing.assert_array_equal(got.labels, data.labels)


def test_check_card_class_counts_from_labels(tmp_path):
    folder, _ = _synthetic_folder(tmp_path, like="AWA1", n=700, name="AWA1")
    data = load_dataset(folder, use_cache=False)
    card = load_card("AWA1").model_copy(update={"num_seen_classes": 39, "num_unseen_classes": 11})
    report = check_card(folder, card, data)
    assert f"{folder}: num_seen_classes (classes of trainval): expected 39, found 40 (card AWA1)" in report.errors
    assert any("num_unseen_classes (classes of test_unseen): expected 11, found 10" in e for e in report.errors)
    assert not any("num_val_classes" in e for e in report.errors)  # 13 val classes, as the card says


def test_load_dataset_custom_folder_needs_no_card(tmp_path):
    data = synthetic_like("APY", seed=5, feature_dim=6, num_samples=200)
    data.class_names = [f"thing{i}" for i in range(data.num_classes)]
    folder = write_xlsa17_layout(data, tmp_path, "MyData")
    got = load_dataset(folder, use_cache=False)
    assert got.name == "MyData" and got.class_names[3] == "thing3" and "warnings" not in got.meta


def test_load_dataset_unknown_name(tmp_path):
    with pytest.raises(DataError, match="not a card name"):
        load_dataset("IMAGENET21K", tmp_path)


def test_load_dataset_missing_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MMALIGN_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataError) as err:
        load_dataset("SUN")
    msg = str(err.value)
    assert "res101.mat, att_splits.mat" in msg and str(tmp_path / "root" / "SUN") in msg
    assert "Good, the Bad and the Ugly" in msg and "xlsa17.zip" in msg and "$MMALIGN_DATA_DIR" in msg


def test_load_dataset_require_sentences(tmp_path):
    _synthetic_folder(tmp_path, like="AWA2", n=300, name="CUB")  # a folder without sent_splits.mat
    with pytest.raises(DataError, match=r"sent_splits\.mat.*dropbox"):
        load_dataset("CUB", tmp_path, require_files=["sent_splits.mat"], skip_card_check=True)


def test_check_card_bad_file_reported_not_raised(tmp_path):
    folder, _ = _synthetic_folder(tmp_path, like="FLO", n=400, name="FLO")
    write_mat(folder / "att_splits.mat", {"att": np.ones((3, 3))})
    report = check_card(tmp_path, "FLO")
    assert not report.ok
    assert any("key 'trainval_loc' missing" in e for e in report.errors)


def test_load_dataset_path_string_named_like_a_card_is_custom(tmp_path):
    folder, data = _synthetic_folder(tmp_path, like="CUB", n=500, name="CUB")
    got = load_dataset(str(folder), use_cache=False)  # a path, not the card: no card check
    assert got.name == "CUB" and got.num_samples == 500 and "card" not in got.meta
