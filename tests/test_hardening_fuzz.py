"""Property-based fuzz of the loaders and config parsing: whatever the input, the outcome is a
result or an :class:`~mmalign.errors.MmalignError`, never another exception.

Derandomized (the same examples on every run) and bounded with ``max_examples`` so the file runs in
well under 30 s. Found problems that are library bugs are pinned as strict-xfail regression tests at
the end of the file, with the proposed fix in their reason.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mmalign
from mmalign.config import make_config
from mmalign.datasets.matfile import read_mat, write_mat
from mmalign.datasets.xlsa17 import read_class_level, read_res101, read_xlsa17
from mmalign.errors import MmalignError
from mmalign.runs import parse_run_config

import malformed

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

_WORK = Path(tempfile.mkdtemp(prefix="mmalign-fuzz-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_VALID = malformed.write_dataset(_WORK / "valid")
_RES101 = (_VALID / "res101.mat").read_bytes()
_ATT = (_VALID / "att_splits.mat").read_bytes()


#: Library bugs this fuzz found are fixed; their inputs stay pinned as regression tests at the end
#: of the file. An entry here would tolerate a known bug (exact type and message) while it is open.
KNOWN_BUGS: list[tuple[type, str]] = []


def _outcome(fn, *args, **kwargs):
    """Call ``fn``; an MmalignError is an acceptable outcome, anything else propagates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except MmalignError as exc:
            assert str(exc), "an error must say something"
            return exc
        except Exception as exc:
            if any(isinstance(exc, t) and re.search(m, str(exc)) for t, m in KNOWN_BUGS):
                return exc
            raise


# -- .mat bytes ---------------------------------------------------------------------------------------

_HEADER = _RES101[:128]


@settings(FUZZ, max_examples=150)
@given(st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=600).map(lambda b: _HEADER + b),  # a valid header, then noise: reaches scipy
))
def test_fuzz_random_bytes_into_read_mat(blob):
    path = _WORK / "random.mat"
    path.write_bytes(blob)
    _outcome(read_mat, path, ["features", "labels"], ["image_files"])


@st.composite
def _mutated(draw, base: bytes):
    """A valid file with a few bytes overwritten, a slice removed or inserted, or cut short."""
    blob = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "delete", "insert"]))
        pos = draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "flip" and blob:
            blob[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del blob[pos:]
        elif op == "delete":
            del blob[pos:pos + draw(st.integers(1, 64))]
        else:
            blob[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(blob)


@settings(FUZZ, max_examples=150)
@given(_mutated(_RES101))
def test_fuzz_mutated_res101_into_reader(blob):
    path = _WORK / "mut_res" / "res101.mat"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    res = _outcome(read_res101, path, image_files=True)
    if not isinstance(res, MmalignError):
        assert res.features.dtype == np.float32 and res.features.shape[0] == res.labels.shape[0]
        assert np.isfinite(res.features).all() and res.labels.min() >= 0


@settings(FUZZ, max_examples=150)
@given(_mutated(_ATT))
def test_fuzz_mutated_att_splits_into_reader(blob):
    folder = _WORK / "mut_att"
    folder.mkdir(exist_ok=True)
    (folder / "att_splits.mat").write_bytes(blob)
    cl = _outcome(read_class_level, folder)
    if not isinstance(cl, MmalignError):
        assert all(v.min() >= 0 for v in cl.splits.values())
        assert cl.class_features["attributes"].shape[0] == cl.num_classes


# -- .mat contents: random arrays under the xlsa17 keys --------------------------------------------

_DTYPES = st.sampled_from([np.float64, np.float32, np.int32, np.uint8, np.int64, np.bool_, np.complex64, np.uint16])


def _array(max_side=14):
    return _DTYPES.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=max_side),
        elements={"allow_nan": True, "allow_infinity": True} if np.dtype(dt).kind in "fc" else None))


def _valid_arrays():
    res = malformed.mat_load(_VALID / "res101.mat")
    att = malformed.mat_load(_VALID / "att_splits.mat")
    return res, att


_RES_KEYS = ["features", "labels"]
_ATT_KEYS = ["att", "trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc"]


@settings(FUZZ, max_examples=120)
@given(st.dictionaries(st.sampled_from(_RES_KEYS + _ATT_KEYS), st.one_of(st.none(), _array()), max_size=3),
       st.sampled_from(["replace", "scale"]))
def test_fuzz_random_arrays_into_xlsa17_reader(changes, how):
    res, att = _valid_arrays()
    for key, value in changes.items():
        target = res if key in _RES_KEYS else att
        if value is None:
            target.pop(key, None)
        elif how == "scale" and key in target and value.size and value.dtype.kind in "iuf":
            target[key] = target[key] * value.ravel()[0]  # right shape, odd values (0, negative, NaN, huge)
        else:
            target[key] = value
    folder = _WORK / "arrays"
    write_mat(folder / "res101.mat", res)
    write_mat(folder / "att_splits.mat", att)
    data = _outcome(read_xlsa17, folder, use_cache=False)
    if not isinstance(data, MmalignError):
        assert data.validate() is data


# -- configs ------------------------------------------------------------------------------------------

_NAMES = ["data", "aligner", "modalities", "dataset", "data_dir", "synthetic", "synthetic_seed", "side_info",
          "skip_card_check", "recipe", "latent_size", "reparameterization", "reduction", "pair_weights", "seed",
          "device", "training", "epochs", "batch_size", "lr", "betas", "eps", "amsgrad", "weight_decay", "warmup",
          "beta", "cross", "distance", "start", "end", "factor", "log_every", "kind", "name", "hidden", "source",
          "normaliser", "options"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["CUB", "cpu", "auto", "cuda:0", "attributes", "sentences", "image_features", "minmax", "sum",
                     "cada2019", "standard", "cada_vae", "img", "att"]),
)
_KEYS = st.one_of(st.sampled_from(_NAMES), st.text(max_size=8))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=20)


@st.composite
def _run_configs(draw):
    """JSON-like run configs, mostly shaped like real ones so the search reaches deep keys."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_JSON)
    cfg = draw(st.dictionaries(st.sampled_from(["data", "aligner", "modalities"]) | _KEYS, _JSON, max_size=3))
    if draw(st.booleans()):
        cfg["aligner"] = draw(st.dictionaries(_KEYS, _JSON, max_size=4))
    if draw(st.booleans()):
        cfg["modalities"] = draw(st.lists(
            st.fixed_dictionaries({"kind": st.sampled_from(["image_features", "attributes", "sentences", "x"])},
                                  optional={k: _JSON for k in ("name", "hidden", "source", "normaliser", "options")}),
            max_size=3))
    return cfg


@settings(FUZZ, max_examples=150)
@given(_run_configs())
def test_fuzz_run_config_parsing_and_building(raw):
    run = _outcome(parse_run_config, raw, "fuzz.toml")
    if isinstance(run, MmalignError):
        assert str(run).startswith("fuzz.toml")
        return
    # what `mmalign train` does with it before reading data: build the aligner
    _outcome(mmalign.Aligner, run.modality_specs(), run.aligner)


@st.composite
def _aligner_overrides(draw):
    cfg = draw(st.dictionaries(st.sampled_from(["latent_size", "seed", "device", "reparameterization", "reduction",
                                                "pair_weights", "recipe"]) | _KEYS, _JSON, max_size=3))
    if draw(st.booleans()):
        cfg["training"] = draw(st.dictionaries(
            st.sampled_from(["epochs", "batch_size", "lr", "betas", "eps", "amsgrad", "weight_decay", "log_every"]),
            _SCALARS | st.lists(st.floats(-2, 2), max_size=3), max_size=3))
    return cfg


@settings(FUZZ, max_examples=200)
@given(_aligner_overrides())
def test_fuzz_make_config(overrides):
    cfg = _outcome(make_config, overrides)
    assert isinstance(cfg, (mmalign.AlignerConfig, MmalignError, *(t for t, _ in KNOWN_BUGS)))


# -- AlignmentData.validate ---------------------------------------------------------------------------

_FEATURE_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.complex64, np.bool_])


def _random_matrix(rows):
    return st.tuples(_FEATURE_DTYPES, rows, st.integers(0, 4), st.integers(1, 3)).flatmap(
        lambda t: hnp.arrays(t[0], (t[1], t[2], 2)[: t[3]],
                             elements={"allow_nan": True, "allow_infinity": True} if np.dtype(t[0]).kind in "fc" else None))


def _random_index(n):
    return st.one_of(
        hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(-1, n + 1)),
        st.sampled_from([np.int32, np.uint8, np.float32, np.bool_]).flatmap(lambda dt: hnp.arrays(dt, st.integers(0, 4))),
        st.lists(st.integers(-1, n + 1), max_size=5),
        st.lists(st.lists(st.integers(0, n), max_size=2), min_size=1, max_size=3),  # nested, maybe ragged
        hnp.arrays(np.int64, (2, 2), elements=st.integers(0, n - 1)),
    )


@st.composite
def _alignment_data(draw):
    """A small valid data set with one to three fields replaced by random values."""
    data = malformed.small_data()
    n, c = data.num_samples, data.num_classes
    fields = draw(st.lists(st.sampled_from(["labels", "class_names", "features", "attributes", "split", "drop_split",
                                            "mask"]), min_size=1, max_size=3))
    for field in fields:
        if field == "labels":
            data.labels = draw(st.one_of(
                hnp.arrays(np.int64, st.sampled_from([n, n - 1, 0]), elements=st.integers(-2, c + 1)),
                st.sampled_from([np.int32, np.uint8, np.float32, np.bool_, np.int64]).flatmap(
                    lambda dt: hnp.arrays(dt, hnp.array_shapes(max_dims=2, min_side=0, max_side=n + 1)))))
        elif field == "class_names":
            data.class_names = draw(st.lists(st.text(max_size=3), min_size=0, max_size=c + 2))
        elif field == "features":
            data.sample_features[draw(st.sampled_from(["features", "extra"]))] = draw(_random_matrix(st.sampled_from([n, n + 1, 0, c])))
        elif field == "attributes":
            data.class_features["attributes"] = draw(_random_matrix(st.sampled_from([c, c - 1, n, 0])))
        elif field == "split":
            data.splits[draw(st.sampled_from(["trainval", "test_seen", "test_unseen", "train", "val"]))] = draw(_random_index(n))
        elif field == "drop_split":
            data.splits.pop(draw(st.sampled_from(["trainval", "test_seen", "test_unseen"])), None)
        else:
            data.sample_masks[draw(st.sampled_from(["features", "other"]))] = draw(st.one_of(
                hnp.arrays(np.bool_, st.sampled_from([n, n - 1, 0])),
                st.lists(st.lists(st.booleans(), max_size=2), min_size=1, max_size=3)))
    return data


@settings(FUZZ, max_examples=250)
@given(_alignment_data())
def test_fuzz_alignment_data_validate(data):
    result = _outcome(data.validate)
    if result is data:  # accepted data must really be usable
        n = data.num_samples
        for idx in data.splits.values():
            idx = np.asarray(idx)
            assert idx.ndim == 1 and (idx.size == 0 or (idx.min() >= 0 and idx.max() < n))
        for arr in list(data.sample_features.values()) + list(data.class_features.values()):
            assert np.isfinite(arr).all()


# -- pinned findings: inputs that once escaped as non-library exceptions ----------------------------------------

_H = {"hidden": [8, 8]}


def _fit(run_raw):
    run = parse_run_config(run_raw, "fuzz.toml")
    aligner = mmalign.Aligner(run.modality_specs(), run.aligner)
    aligner.fit(malformed.small_data(), progress=False)


FINDINGS = [
    pytest.param({"modalities": [{"kind": "image_features", "options": 5}, {"kind": "attributes"}]},
                 id="modality_options_not_a_table"),
    pytest.param({"modalities": [{"kind": "image_features", "name": 5, **_H}, {"kind": "attributes", **_H}]},
                 id="modality_name_not_a_string"),
    pytest.param({"modalities": [{"kind": "image_features", "name": "a.b", **_H}, {"kind": "attributes", **_H}]},
                 id="modality_name_with_dot"),
    pytest.param({"aligner": {"latent_size": 4, "training": {"epochs": 1, "warmup": {"beta": {"start": 5, "end": 5, "factor": 1}}}}},
                 id="warmup_ramp_start_equals_end"),
    pytest.param({"aligner": {"latent_size": 4, "training": {"epochs": 1, "betas": [2, 0.5]}}}, id="adam_betas_out_of_range"),
    pytest.param({"aligner": {"latent_size": 4, "seed": 2**70, "training": {"epochs": 1}}}, id="seed_beyond_64_bits"),
]


@pytest.mark.parametrize("raw", FINDINGS)
def test_fuzz_finding_is_an_mmalign_error(raw):
    raw.setdefault("modalities", [{"kind": "image_features", **_H}, {"kind": "attributes", **_H}])
    try:
        _fit(raw)
    except MmalignError:
        return
    pytest.fail("accepted; expected an MmalignError")


def _data_with(**changes):
    data = malformed.small_data()
    for key, value in changes.items():
        if key in ("trainval",):
            data.splits[key] = value
        elif key == "mask":
            data.sample_masks["features"] = value
        else:
            setattr(data, key, value)
    return data


API_FINDINGS = [
    pytest.param(lambda: make_config({"recipe": [None]}), id="recipe_not_a_string"),
    pytest.param(lambda: _data_with(trainval=[[0], [1, 2]]).validate(), id="ragged_split_list"),
    pytest.param(lambda: _data_with(mask=[[True], [True, False]]).validate(), id="ragged_mask_list"),
    pytest.param(lambda: _data_with(class_names=5).validate(), id="class_names_not_a_list"),
]


@pytest.mark.parametrize("call", API_FINDINGS)
def test_fuzz_api_finding_is_an_mmalign_error(call):
    try:
        call()
    except MmalignError:
        return
    pytest.fail("accepted; expected an MmalignError")
