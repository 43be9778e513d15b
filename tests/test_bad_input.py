"""Bad input raises the library's own errors, naming what is wrong and where."""

import numpy as np
import pytest

import mmalign
from mmalign.cli import main
from mmalign.errors import ConfigError, DataError, TrainingError
from conftest import SMALL, make_toy_data


def test_unknown_config_key_is_named():
    with pytest.raises(ConfigError, match="'training.epoch'.*unknown key"):
        mmalign.Aligner(["image_features", "attributes"], {"training": {"epoch": 3}})


def test_wrong_config_type_is_named():
    with pytest.raises(ConfigError, match="'training.batch_size'"):
        mmalign.Aligner(["image_features", "attributes"], {"training": {"batch_size": "fifty"}})


def test_unknown_modality_option_is_rejected():
    with pytest.raises(ConfigError, match="image_features.*'hiden'.*unknown key"):
        mmalign.Aligner([{"kind": "image_features", "hiden": (1, 2)}, "attributes"])


def test_negative_hidden_size_is_rejected():
    with pytest.raises(ConfigError, match="hidden"):
        mmalign.Aligner([{"kind": "image_features", "hidden": (-1, 2)}, "attributes"])


def test_single_modality_is_rejected():
    with pytest.raises(ConfigError, match="at least two"):
        mmalign.Aligner(["image_features"])


def test_nan_in_features_names_the_array_and_row():
    data = make_toy_data()
    data.sample_features["features"][7, 3] = np.nan
    a = mmalign.Aligner(["image_features", "attributes"], SMALL)
    with pytest.raises(DataError, match="'features'.*NaN or Inf.*row 7"):
        a.fit(data, progress=False)


def test_inf_in_class_features_is_rejected():
    data = make_toy_data()
    data.class_features["attributes"][2, 0] = np.inf
    with pytest.raises(DataError, match="'attributes'.*NaN or Inf"):
        mmalign.Aligner(["image_features", "attributes"], SMALL).fit(data, progress=False)


def test_wrong_dimension_at_encode_is_named(tmp_path):
    data = make_toy_data()
    a = mmalign.Aligner([{"kind": "image_features", "hidden": (8, 8)}, {"kind": "attributes", "hidden": (8, 8)}],
                        {**SMALL, "training": {"epochs": 1}})
    a.fit(data, progress=False)
    with pytest.raises(DataError, match="'image_features' expects rows of dimension 40, got shape \\(3, 12\\)"):
        a.encode("image_features", np.zeros((3, 12), np.float32))


@pytest.mark.parametrize("field,texts,message", [
    ("sample_texts", "one string", "must be a list of strings"),
    ("sample_texts", ["a"] * 3, "has 3 entries, expected"),
    ("sample_texts", None, "entry 5 must be a string"),
    ("class_texts", None, "entry 2 must be a string or a non-empty list of strings"),
    ("class_texts", "clash", "also a feature array"),
])
def test_texts_are_validated_with_their_key(field, texts, message):
    data = make_toy_data()
    rows = data.num_samples if field == "sample_texts" else data.num_classes
    key = "descriptions"
    if texts is None:
        texts = ["fine"] * rows
        texts[5 if field == "sample_texts" else 2] = 7 if field == "sample_texts" else []
    elif texts == "clash":
        key, texts = "attributes", ["fine"] * rows
    getattr(data, field)[key] = texts
    with pytest.raises(DataError, match=message) as info:
        data.validate()
    assert f"{field}[{key!r}]" in str(info.value)


def test_feature_rows_must_match_labels():
    data = make_toy_data()
    data.sample_features["features"] = data.sample_features["features"][:-1]
    with pytest.raises(DataError, match="'features' has 239 rows, expected 240"):
        data.validate()


def test_missing_source_array_lists_what_exists():
    data = make_toy_data()
    with pytest.raises(DataError, match="no feature array named 'sentences'"):
        mmalign.Aligner(["image_features", "sentences"], SMALL).fit(data, progress=False)


def test_non_finite_loss_stops_training_with_clear_error():
    data = make_toy_data()
    data.sample_features["features"] *= 1e30
    a = mmalign.Aligner([{"kind": "image_features", "normaliser": "none", "hidden": (8, 8)}, "attributes"], SMALL)
    with pytest.raises(TrainingError, match="non-finite"):
        a.fit(data, progress=False)


def test_cli_reports_bad_input_in_one_line_with_exit_2(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\ndataset = "CUB"\nsynthetic = true\n\n[aligner]\ntraining = { epoch = 3 }\n')
    code = main(["train", str(cfg), "--out", str(tmp_path / "ckpt"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mmalign: error: {cfg}: ") and "'training.epoch'" in lines[0] and "unknown key" in lines[0]
    assert not (tmp_path / "ckpt").exists()
