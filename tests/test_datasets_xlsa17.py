"""xlsa17 reader: real class-level files, a full CUB built from real labels, malformed inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmalign.datasets import load_card, read_class_level, read_res101, read_xlsa17, synthetic_like, write_xlsa17_layout
from mmalign.datasets.matfile import read_mat, write_mat
from mmalign.errors import DataError
from conftest import REAL_DATA
DATASETS = ["APY", "AWA1", "AWA2", "CUB", "FLO", "SUN"]


def _real(*parts: str) -> Path:
    return REAL_DATA.joinpath(*parts)


@pytest.mark.parametrize("name", DATASETS)
def test_read_class_level_real_matches_card(name):
    folder = _real("xlsa17", name)
    card = load_card(name)
    cl = read_class_level(folder, name)
    assert cl.num_classes == card.num_classes and len(cl.class_names) == card.num_classes
    for key, spec in card.class_features.items():
        assert cl.class_features[key].shape == (card.num_classes, spec.dim)
        assert cl.class_features[key].dtype == np.float32
    for split, size in card.splits.model_dump().items():
        if size is not None:
            assert cl.splits[split].size == size, split
    # the three GZSL splits partition the images: the largest index is the image count
    assert cl.min_num_samples == card.num_images
    assert sum(cl.splits[s].size for s in ("trainval", "test_seen", "test_unseen")) == card.num_images
    assert all(v.min() >= 0 for v in cl.splits.values())  # 1-based in the file, 0-based here


def test_read_class_level_real_cub_sentences_and_follows_reference():
    folder = _real("xlsa17", "CUB")
    cl = read_class_level(folder)
    raw = read_mat(folder / "att_splits.mat", ["att", "trainval_loc"])
    np.testing.assert_array_equal(cl.class_features["attributes"], raw["att"].T.astype(np.float32))
    np.testing.assert_array_equal(cl.splits["trainval"], raw["trainval_loc"].ravel().astype(np.int64) - 1)
    assert cl.class_features["sentences"].shape == (200, 1024)
    assert {"train", "val"} <= set(cl.splits)  # CUB's train/val come from sent_splits.mat
    assert cl.class_names[0] == "002.Laysan_Albatross"
    np.testing.assert_allclose(np.linalg.norm(cl.class_features["attributes"], axis=1), 1.0, rtol=1e-5)
    assert set(cl.meta["files"]) == {"att_splits.mat", "sent_splits.mat"}


def test_read_class_level_flo_has_generated_names():
    cl = read_class_level(_real("xlsa17", "FLO"))
    assert cl.class_names[:2] == ["class_001", "class_002"] and cl.num_classes == 102


def _copy_class_files(dst: Path, name: str = "CUB") -> Path:
    folder = dst / name
    folder.mkdir(parents=True)
    for f in ("att_splits.mat", "sent_splits.mat"):
        (folder / f).write_bytes((REAL_DATA / "xlsa17" / name / f).read_bytes())
    return folder


def test_read_xlsa17_full_cub_from_real_labels_any_dim(tmp_path):
    meta = np.load(_real("cub_labels.npz"), allow_pickle=False)
    folder = _copy_class_files(tmp_path)
    labels = meta["labels"]
    feats = np.random.default_rng(0).random((16, labels.size))  # D x N, float64 like the release
    write_mat(folder / "res101.mat", {"features": feats, "labels": (labels + 1).astype(np.float64).reshape(-1, 1)})
    data = read_xlsa17(folder, use_cache=False)
    assert data.name == "CUB" and data.num_samples == 11788 and data.num_classes == 200
    assert data.sample_features["features"].shape == (11788, 16)
    assert data.sample_features["features"].dtype == np.float32
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.splits["test_unseen"], meta["test_unseen_loc"])
    assert len(data.seen_classes) == 150 and len(data.unseen_classes) == 50
    assert set(data.class_features) == {"attributes", "sentences"}
    assert data.meta["feature_dim"] == 16 and "res101.mat" in data.meta["files"]


# ----- malformed inputs, on small synthetic folders written in the exact layout -----

@pytest.fixture
def tiny(tmp_path):
    data = synthetic_like("AWA2", seed=0, feature_dim=8, num_samples=300)
    return write_xlsa17_layout(data, tmp_path, "TINY"), data


def _rewrite(path: Path, **changes) -> None:
    keys = {"res101.mat": ["features", "labels"], "att_splits.mat": ["att", "trainval_loc", "test_seen_loc", "test_unseen_loc"]}[path.name]
    raw = read_mat(path, keys, ["train_loc", "val_loc", "allclasses_names", "original_att"])
    raw.update(changes)
    write_mat(path, {k: v for k, v in raw.items() if v is not None})


def test_read_xlsa17_roundtrip(tiny):
    folder, data = tiny
    got = read_xlsa17(folder, use_cache=False)
    np.testing.assert_array_equal(got.labels, data.labels)
    np.testing.assert_allclose(got.sample_features["features"], data.sample_features["features"])
    assert {k: v.size for k, v in got.splits.items()} == {k: v.size for k, v in data.splits.items()}
    assert got.class_names == data.class_names


def test_read_res101_transposed_features(tiny):
    folder, data = tiny
    _rewrite(folder / "res101.mat", features=data.sample_features["features"])  # N x D
    with pytest.raises(DataError, match=r"res101\.mat: key 'features' is stored N x D \(300 x 8.*transposed"):
        read_res101(folder / "res101.mat")


def test_read_res101_zero_based_labels(tiny):
    folder, data = tiny
    _rewrite(folder / "res101.mat", labels=data.labels.reshape(-1, 1).astype(np.float64))
    with pytest.raises(DataError, match=r"res101\.mat: key 'labels' looks 0-based.*1-based"):
        read_res101(folder / "res101.mat")


def test_read_res101_nan(tiny):
    folder, data = tiny
    feats = data.sample_features["features"].T.astype(np.float64)
    feats[3, 7] = np.nan
    _rewrite(folder / "res101.mat", features=feats)
    with pytest.raises(DataError, match=r"key 'features' holds 1 NaN/Inf value\(s\) \(first at image 7, feature 3"):
        read_res101(folder / "res101.mat")


def test_read_res101_size_mismatch(tiny):
    folder, data = tiny
    _rewrite(folder / "res101.mat", features=np.ones((8, 299)))
    with pytest.raises(DataError, match=r"shape \(8, 299\) but 'labels' has 300 entries; expected D x 300"):
        read_res101(folder / "res101.mat")


def test_read_res101_missing_key(tiny):
    folder, data = tiny
    write_mat(folder / "res101.mat", {"feats": data.sample_features["features"].T})
    with pytest.raises(DataError, match=r"missing key\(s\) features \(D x N float matrix\), labels"):
        read_res101(folder / "res101.mat")


def test_read_xlsa17_label_out_of_range(tiny):
    folder, data = tiny
    labels = data.labels.reshape(-1, 1) + 1.0
    labels[0] = data.num_classes + 1
    _rewrite(folder / "res101.mat", labels=labels)
    with pytest.raises(DataError, match=r"'labels' goes up to 51 \(1-based\).*50 classes"):
        read_xlsa17(folder, use_cache=False)


def test_read_xlsa17_class_without_images(tiny):
    folder, data = tiny
    labels = data.labels.reshape(-1, 1) + 1.0
    labels[labels == 5] = 6  # class 5 (1-based) loses its images
    _rewrite(folder / "res101.mat", labels=labels)
    with pytest.raises(DataError, match=r"1 class\(es\) have no images.*5 \(awa2_class_005\)"):
        read_xlsa17(folder, use_cache=False)


def test_read_xlsa17_split_out_of_range(tiny):
    folder, data = tiny
    _rewrite(folder / "att_splits.mat", test_unseen_loc=np.append(data.splits["test_unseen"] + 1, 301).reshape(-1, 1))
    with pytest.raises(DataError, match=r"att_splits\.mat: key 'test_unseen_loc' holds index 301 \(1-based\).*only 300 images"):
        read_xlsa17(folder, use_cache=False)


def test_read_class_level_zero_based_split(tiny):
    folder, data = tiny
    _rewrite(folder / "att_splits.mat", trainval_loc=data.splits["trainval"].reshape(-1, 1))
    with pytest.raises(DataError, match=r"key 'trainval_loc' looks 0-based"):
        read_class_level(folder)


def test_read_class_level_overlapping_splits(tiny):
    folder, data = tiny
    ts = np.append(data.splits["test_seen"], data.splits["trainval"][0]) + 1
    _rewrite(folder / "att_splits.mat", test_seen_loc=ts.reshape(-1, 1))
    with pytest.raises(DataError, match=r"'trainval_loc' and 'test_seen_loc' share 1 images"):
        read_class_level(folder)


def test_read_class_level_empty_split(tiny):
    folder, _ = tiny
    _rewrite(folder / "att_splits.mat", val_loc=np.zeros((0, 1)))
    with pytest.raises(DataError, match=r"key 'val_loc' should be a non-empty n x 1 vector"):
        read_class_level(folder)


def test_read_class_level_transposed_attributes(tiny):
    folder, data = tiny
    _rewrite(folder / "att_splits.mat", att=data.class_features["attributes"].astype(np.float64))  # C x dim
    with pytest.raises(DataError, match=r"key 'att' is stored classes x dim \(50 x 85\).*transposed"):
        read_class_level(folder)


def test_read_class_level_attribute_nan(tiny):
    folder, data = tiny
    att = data.class_features["attributes"].T.astype(np.float64)
    att[0, 2] = np.inf
    _rewrite(folder / "att_splits.mat", att=att)
    with pytest.raises(DataError, match=r"key 'att' holds 1 NaN/Inf.*class 2"):
        read_class_level(folder)


def test_read_xlsa17_unseen_class_in_trainval(tiny):
    folder, data = tiny
    # move one test_unseen image into trainval: its class becomes both seen and unseen
    moved = data.splits["test_unseen"][0]
    tv = np.sort(np.append(data.splits["trainval"], moved)) + 1
    tu = data.splits["test_unseen"][1:] + 1
    _rewrite(folder / "att_splits.mat", trainval_loc=tv.reshape(-1, 1), test_unseen_loc=tu.reshape(-1, 1))
    with pytest.raises(DataError, match=r"unseen classes must have no training images"):
        read_xlsa17(folder, use_cache=False)


def test_read_class_level_sentence_split_mismatch(tmp_path):
    data = synthetic_like("CUB", seed=1, feature_dim=4, num_samples=400)
    folder = write_xlsa17_layout(data, tmp_path, "CUBLIKE")
    raw = read_mat(folder / "sent_splits.mat", ["att", "trainval_loc"], ["test_seen_loc", "test_unseen_loc"])
    raw["trainval_loc"] = raw["trainval_loc"][1:]
    write_mat(folder / "sent_splits.mat", raw)
    with pytest.raises(DataError, match=r"sent_splits\.mat: key 'trainval_loc' \(\d+ indices\) differs"):
        read_class_level(folder)


def test_read_class_level_sentence_dim_mismatch(tmp_path):
    data = synthetic_like("CUB", seed=1, feature_dim=4, num_samples=400)
    folder = write_xlsa17_layout(data, tmp_path, "CUBLIKE")
    write_mat(folder / "sent_splits.mat", {"att": np.ones((1024, 199))})
    with pytest.raises(DataError, match=r"sent_splits\.mat: key 'att' has shape \(1024, 199\), expected \(dim, 200\)"):
        read_class_level(folder)
