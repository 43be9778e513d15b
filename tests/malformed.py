"""Generator of the malformed-input corpus (issue: hardening).

Every case starts from something valid (a small data set written with
:func:`mmalign.datasets.synthetic.write_xlsa17_layout`, a run config, or a checkpoint written by
``mmalign train``), corrupts exactly one thing, and says which ``mmalign`` command line must refuse
it and what the one-line error has to name: the file, the key and what was expected (``expect``
holds regular expressions, matched case-insensitively against the message).

``kind``:

* ``data``: ``mmalign benchmark custom --data-dir <folder> --epochs 1 --out <out>``
* ``config``: ``mmalign train <config> --out <out>``, and bad options of ``eval``/``benchmark``
  (``--shots`` beyond a class's images, negative shots, a corrupt ``results.json`` in ``--out``)
* ``checkpoint``: ``mmalign eval <checkpoint>`` (or ``train --resume`` for a training state)
* ``state``: ``mmalign train --resume`` on a checkpoint whose training state was edited
* ``results``: an existing ``results.json`` that is corrupt or wrongly typed (never overwritten)
* ``output``: an output location that cannot take the output (a file, no room, not writable, one
  of the command's own inputs), checked before any training
* ``pickle``: ``mmalign data convert-pickle``
* ``cli``: option values, every requested run checked before the first one starts
* ``accepted``: valid input that must load (float64 features).

A case may inject a fault for the duration of the command (``Workspace.patches``: a full disk, a
folder that refuses writes); ``marks`` holds pytest marks (a skip where CUDA is available).

Every case's ``--out`` folder (or checkpoint folder) is filled beforehand with a ``results.json``;
the test checks it is byte-identical afterwards.

Used by ``tests/test_hardening_corpus.py``; ``python tests/malformed.py DIR`` writes the whole
corpus to ``DIR`` (one sub-folder per case, each with ``argv.json``) for manual inspection.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import scipy.io
import torch

import mmalign
from mmalign.datasets.matfile import write_mat
from mmalign.datasets.synthetic import write_xlsa17_layout
from conftest import make_toy_data

# A small valid data set: 12 classes (8 seen, 4 unseen), 10 images each, 16-d features, 6-d attributes.
CLASSES, UNSEEN, PER_CLASS, FEAT_DIM, ATT_DIM = 12, 4, 10, 16, 6
N = CLASSES * PER_CLASS
# One epoch: every loss family at full weight from epoch 0 (ramps ending at epoch 0). With CADA's ramps
# the run would end before they start, and the warning saying so would be a second line on stderr
# beside the error under test.
TINY_ALIGNER = {"latent_size": 4, "training": {"epochs": 1, "batch_size": 16, "warmup": {
    family: {"start": -1, "end": 0, "factor": factor} for family, factor in (("kl", 0.25), ("cross", 2.37), ("align", 8.13))}}}
MODALITIES = [
    {"kind": "image_features", "name": "img", "hidden": [16, 16]},
    {"kind": "attributes", "name": "att", "hidden": [8, 8]},
]
PRIOR_RESULTS = [{"dataset": "EARLIER", "setting": "gzsl", "shots": 0, "seed": 0, "S": 1.0, "U": 2.0, "H": 1.3}]


def small_data(seed: int = 0, per_class: int = PER_CLASS, feat_dim: int = FEAT_DIM) -> mmalign.AlignmentData:
    """A valid AlignmentData (conftest's toy data at this corpus' sizes); features are a noisy
    non-negative map of the class attributes."""
    data = make_toy_data(seed, classes=CLASSES, per_class=per_class, feat_dim=feat_dim, att_dim=ATT_DIM, unseen=UNSEEN)
    data.class_names = [f"class{i:02d}" for i in range(CLASSES)]
    return data


def write_dataset(root: Path, name: str = "toy", data: mmalign.AlignmentData | None = None) -> Path:
    return write_xlsa17_layout(data or small_data(), root, name)


def run_config(dataset: Path, **aligner) -> dict:
    return {"data": {"dataset": str(dataset)}, "aligner": {**TINY_ALIGNER, **aligner}, "modalities": MODALITIES}


def write_toml(path: Path, cfg: dict) -> Path:
    """A minimal TOML writer for run configs (tables, arrays of tables, scalars, lists)."""

    def key(k: str) -> str:
        return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines = []
    for section, body in cfg.items():
        if isinstance(body, list):
            for entry in body:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {value(v)}" for k, v in entry.items()]
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in body.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- .mat editing ----------------------------------------------------------------------------------

def mat_load(path: Path) -> dict:
    return {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}


def mat_edit(path: Path, **changes) -> None:
    """Rewrite a .mat file with keys replaced (a value of None deletes the key)."""
    arrays = mat_load(path)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    write_mat(path, arrays)


def loc(indices) -> np.ndarray:
    """0-based indices -> a 1-based n x 1 column, as xlsa17 stores them."""
    return (np.asarray(indices, dtype=np.float64) + 1).reshape(-1, 1)


# -- the cases -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # data | config | checkpoint | state | results | output | pickle | cli | accepted
    build: Callable[["Workspace"], list[str]]  # writes the input, returns the CLI argv
    expect: tuple[str, ...] = ()  # regexes the error line must match (file, key, what was expected)
    marks: tuple = ()  # pytest marks (a skip where CUDA is available)


@dataclass
class Workspace:
    """Where one case is built: ``root`` (empty), a valid ``checkpoint`` to copy (checkpoint cases)."""

    root: Path
    checkpoint: Path | None = None
    guarded: list[Path] = field(default_factory=list)  # folders that must be byte-identical afterwards
    # faults to inject while the command runs (a full disk, a read-only folder): each is called with
    # pytest's ``monkeypatch`` (ignored by :func:`generate`, which only writes the inputs)
    patches: list[Callable] = field(default_factory=list)

    def out(self) -> Path:
        out = self.root / "out"
        out.mkdir(exist_ok=True)
        (out / "results.json").write_text(json.dumps(PRIOR_RESULTS, indent=2) + "\n")
        self.guarded.append(out)
        return out

    def data(self) -> Path:
        return write_dataset(self.root / "data")

    def ckpt(self) -> Path:
        assert self.checkpoint is not None, "checkpoint cases need a valid checkpoint to copy"
        dst = self.root / "ckpt"
        shutil.copytree(self.checkpoint, dst)
        (dst / "results.json").write_text(json.dumps(PRIOR_RESULTS, indent=2) + "\n")
        self.guarded.append(dst)
        return dst


def benchmark_argv(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["benchmark", "custom", "--data-dir", str(folder), "--epochs", "1", "--out", str(out),
            "--no-progress", *extra]


def _data(mutate: Callable[[Path], None]) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        folder = ws.data()
        mutate(folder)
        return benchmark_argv(folder, ws.out())

    return build


def _truncate(name: str, keep: float | int) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        blob = (folder / name).read_bytes()
        n = keep if isinstance(keep, int) else int(len(blob) * keep)
        (folder / name).write_bytes(blob[:n])

    return mutate


def _replace_bytes(name: str, blob: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(blob)


def _v73(folder: Path) -> None:
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    blob = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    (folder / "res101.mat").write_bytes(blob.ljust(512, b"\x00") + b"\x89HDF\r\n\x1a\n" + b"\x00" * 256)


def _res(**changes) -> Callable[[Path], None]:
    return lambda folder: mat_edit(folder / "res101.mat", **changes)


def _att(**changes) -> Callable[[Path], None]:
    return lambda folder: mat_edit(folder / "att_splits.mat", **changes)


def _features_nxd(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    mat_edit(folder / "res101.mat", features=np.ascontiguousarray(raw["features"].T))


def _att_cxd(folder: Path) -> None:
    raw = mat_load(folder / "att_splits.mat")
    mat_edit(folder / "att_splits.mat", att=np.ascontiguousarray(raw["att"].T))


def _att_drop_class(folder: Path) -> None:
    raw = mat_load(folder / "att_splits.mat")
    mat_edit(folder / "att_splits.mat", att=raw["att"][:, :-1], original_att=raw["original_att"][:, :-1])


def _labels_drop_one(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    mat_edit(folder / "res101.mat", labels=raw["labels"][:-1], image_files=raw["image_files"][:-1])


def _labels_zero_based(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    mat_edit(folder / "res101.mat", labels=raw["labels"] - 1)


def _labels_out_of_range(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    labels = raw["labels"].copy()
    labels[-1, 0] = CLASSES + 5
    mat_edit(folder / "res101.mat", labels=labels)


def _split_out_of_range(folder: Path) -> None:
    d = small_data()
    mat_edit(folder / "att_splits.mat", test_unseen_loc=loc(np.append(d.splits["test_unseen"], N + 40)))


def _split_overlap(folder: Path) -> None:
    d = small_data()
    mat_edit(folder / "att_splits.mat", test_seen_loc=loc(np.append(d.splits["test_seen"], d.splits["trainval"][0])))


def _split_empty(folder: Path) -> None:
    mat_edit(folder / "att_splits.mat", test_seen_loc=np.zeros((0, 1)))


def _split_duplicate(folder: Path) -> None:
    d = small_data()
    mat_edit(folder / "att_splits.mat", trainval_loc=loc(np.append(d.splits["trainval"], d.splits["trainval"][3])))


def _split_fraction(folder: Path) -> None:
    d = small_data()
    bad = loc(d.splits["test_seen"])
    bad[0, 0] += 0.5
    mat_edit(folder / "att_splits.mat", test_seen_loc=bad)


def _split_zero_based(folder: Path) -> None:
    d = small_data()
    mat_edit(folder / "att_splits.mat", trainval_loc=np.asarray(d.splits["trainval"], dtype=np.float64).reshape(-1, 1))


def _class_without_images(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    labels = raw["labels"].copy()
    labels[labels == CLASSES] = CLASSES - 1  # last (unseen) class loses its images to its neighbour
    mat_edit(folder / "res101.mat", labels=labels)


def _unseen_class_in_trainval(folder: Path) -> None:
    d = small_data()
    unseen_img = d.splits["test_unseen"][0]
    mat_edit(folder / "att_splits.mat",
             trainval_loc=loc(np.append(d.splits["trainval"], unseen_img)),
             test_unseen_loc=loc(d.splits["test_unseen"][1:]))


def _features_nan(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    feats = raw["features"].copy()
    feats[3, 7] = np.nan
    mat_edit(folder / "res101.mat", features=feats)


def _att_inf(folder: Path) -> None:
    raw = mat_load(folder / "att_splits.mat")
    att = raw["att"].copy()
    att[1, 2] = np.inf
    mat_edit(folder / "att_splits.mat", att=att)


def _features_text(folder: Path) -> None:
    mat_edit(folder / "res101.mat", features=np.array(["not numbers"]))


def _labels_matrix(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    mat_edit(folder / "res101.mat", labels=raw["labels"].reshape(2, -1))


def _sentences_wrong_classes(folder: Path) -> None:
    raw = mat_load(folder / "att_splits.mat")
    write_mat(folder / "sent_splits.mat", {"att": np.ones((5, CLASSES - 2)),
                                           **{k: v for k, v in raw.items() if k.endswith("_loc")}})


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _features_float64(folder: Path) -> None:
    raw = mat_load(folder / "res101.mat")
    mat_edit(folder / "res101.mat", features=raw["features"].astype(np.float64))




# config cases ------------------------------------------------------------------------------------



def _config(edit: Callable[[dict], dict | str], suffix: str = ".toml") -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        cfg = edit(run_config(ws.data()))
        path = ws.root / f"run{suffix}"
        if isinstance(cfg, str):
            path.write_text(cfg)
        elif suffix == ".json":
            path.write_text(json.dumps(cfg))
        else:
            write_toml(path, cfg)
        return ["train", str(path), "--out", str(ws.out()), "--no-progress"]

    return build


def _set(cfg: dict, section: str, **values) -> dict:
    cfg[section] = {**cfg[section], **values}
    return cfg


def _modality(cfg: dict, i: int, **values) -> dict:
    cfg["modalities"] = [dict(m) for m in cfg["modalities"]]
    cfg["modalities"][i].update(values)
    return cfg


def _eval_shots(ws: Workspace) -> list[str]:
    return ["eval", str(ws.ckpt()), "--shots", str(PER_CLASS), "--policy", "test"]


def _results_corrupt(ws: Workspace) -> list[str]:
    out = ws.out()
    (out / "results.json").write_text('[{"dataset": "CUB", "S": 1.0},\n{"dataset": "CU')  # a copy cut short
    return benchmark_argv(ws.data(), out)


# checkpoint cases --------------------------------------------------------------------------------

def _ckpt(mutate: Callable[[Path], None], command: str = "eval") -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        ckpt = ws.ckpt()
        mutate(ckpt)
        if command == "eval":  # --policy test: custom data have no fixed classifier-epoch table
            return ["eval", str(ckpt), "--policy", "test"]
        run = json.loads((ckpt / "config.json").read_text())["run"]
        if command == "resume-other":  # a different run resuming into this folder
            run["aligner"]["latent_size"] = run["aligner"]["latent_size"] + 1
        cfg = ws.root / "run.json"
        cfg.write_text(json.dumps(run))
        return ["train", str(cfg), "--out", str(ckpt), "--resume", "--checkpoint-every", "1", "--no-progress"]

    return build


def _edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(ckpt: Path) -> None:
        cfg = json.loads((ckpt / "config.json").read_text())
        change(cfg)
        (ckpt / "config.json").write_text(json.dumps(cfg, indent=2))

    return mutate


def _edit_tensors(name: str, change: Callable[[dict], None], metadata: Callable[[dict], None] | None = None):
    def mutate(ckpt: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        path = ckpt / name
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        change(tensors)
        if metadata is not None:
            metadata(meta)
        save_file(tensors, str(path), metadata=meta or None)

    return mutate


def _drop_first(tensors: dict) -> None:
    tensors.pop(sorted(tensors)[0])


def _add_extra(tensors: dict) -> None:
    import torch

    tensors["encoders.img.extra.weight"] = torch.zeros(3, 3)


def _reshape_first(tensors: dict) -> None:
    import torch

    key = sorted(k for k in tensors if k.endswith("weight"))[0]
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, *tensors[key].shape[1:])


def _norm_wrong_shape(tensors: dict) -> None:
    import torch

    for key in list(tensors):
        tensors[key] = torch.zeros(tensors[key].numel() + 3)


def _unknown_plugin(cfg: dict) -> None:
    cfg["modalities"][0].update(kind="audio_embedding", plugin="mmalign-audio", plugin_version="0.3.0")


def _state_version(meta: dict) -> None:
    meta["state_version"] = "99"


def _garbage(name: str, blob: bytes = b"\x00garbage, not safetensors" * 7) -> Callable[[Path], None]:
    return lambda ckpt: (ckpt / name).write_bytes(blob)


CASES: list[Case] = [
    # --- .mat files: unreadable ---------------------------------------------------------------
    Case("mat_truncated_in_features", "data", _data(_truncate("res101.mat", 0.3)), (r"res101\.mat", r"truncated|corrupt")),
    Case("mat_truncated_after_used_keys", "data", _data(_truncate("res101.mat", 0.55)), (r"res101\.mat", r"truncated")),
    Case("mat_truncated_header", "data", _data(_truncate("att_splits.mat", 60)), (r"att_splits\.mat", r"truncated")),
    Case("mat_empty", "data", _data(_replace_bytes("res101.mat", b"")), (r"res101\.mat", r"empty", r"MATLAB")),
    Case("mat_not_matlab_html", "data",
         _data(_replace_bytes("att_splits.mat", b"<!DOCTYPE html><html><body>Sign in to download</body></html>\n" * 4)),
         (r"att_splits\.mat", r"not a MATLAB", r"expected 'MATLAB 5\.0")),
    Case("mat_v73_hdf5", "data", _data(_v73), (r"res101\.mat", r"v7\.3", r"HDF5", r"-v7")),
    Case("mat_missing_file", "data", _data(_remove("att_splits.mat")), (r"att_splits\.mat", r"missing")),
    # --- .mat files: keys ---------------------------------------------------------------------
    Case("res101_missing_labels", "data", _data(_res(labels=None)), (r"res101\.mat", r"'?labels'?", r"missing")),
    Case("att_missing_test_unseen_loc", "data", _data(_att(test_unseen_loc=None)),
         (r"att_splits\.mat", r"test_unseen_loc", r"missing")),
    Case("features_text", "data", _data(_features_text), (r"res101\.mat", r"'features'", r"numeric")),
    # --- shapes and dimensions ------------------------------------------------------------------
    Case("features_n_x_d", "data", _data(_features_nxd), (r"res101\.mat", r"'features'", r"D x N", r"transposed")),
    Case("att_classes_x_dim", "data", _data(_att_cxd), (r"att_splits\.mat", r"'att'", r"transposed", r"dim x")),
    Case("att_one_class_short", "data", _data(_att_drop_class), (r"att_splits\.mat", r"'att'", rf"\(dim, {CLASSES}\)")),
    Case("labels_vs_features_count", "data", _data(_labels_drop_one), (r"res101\.mat", r"'features'", rf"D x {N - 1}")),
    Case("labels_matrix", "data", _data(_labels_matrix), (r"res101\.mat", r"'labels'", r"n x 1")),
    Case("sentences_class_count", "data", _data(_sentences_wrong_classes),
         (r"sent_splits\.mat", r"'att'", rf"\(dim, {CLASSES}\)")),
    # --- labels and splits ----------------------------------------------------------------------
    Case("labels_zero_based", "data", _data(_labels_zero_based), (r"res101\.mat", r"'labels'", r"0-based", r"1-based")),
    Case("labels_out_of_range", "data", _data(_labels_out_of_range),
         (r"res101\.mat", r"'labels'", rf"1\.\.{CLASSES}")),
    Case("split_index_out_of_range", "data", _data(_split_out_of_range),
         (r"att_splits\.mat", r"test_unseen_loc", rf"1\.\.{N}")),
    Case("split_zero_based", "data", _data(_split_zero_based), (r"att_splits\.mat", r"trainval_loc", r"1-based")),
    Case("split_fractional_index", "data", _data(_split_fraction),
         (r"att_splits\.mat", r"test_seen_loc", r"whole numbers")),
    Case("split_duplicate_index", "data", _data(_split_duplicate),
         (r"att_splits\.mat", r"trainval_loc", r"more than once")),
    Case("splits_overlap", "data", _data(_split_overlap),
         (r"att_splits\.mat", r"trainval_loc", r"test_seen_loc", r"disjoint")),
    Case("split_empty", "data", _data(_split_empty), (r"att_splits\.mat", r"test_seen_loc", r"non-empty")),
    Case("class_without_images", "data", _data(_class_without_images),
         (r"res101\.mat", r"'labels'", r"no images", rf"{CLASSES} \(class{CLASSES - 1:02d}\)")),
    Case("unseen_class_in_trainval", "data", _data(_unseen_class_in_trainval),
         (r"att_splits\.mat", r"test_unseen_loc", r"trainval_loc", r"no training images")),
    # --- values ---------------------------------------------------------------------------------
    Case("features_nan", "data", _data(_features_nan), (r"res101\.mat", r"'features'", r"NaN/Inf", r"image 7")),
    Case("att_inf", "data", _data(_att_inf), (r"att_splits\.mat", r"'att'", r"NaN/Inf", r"class 2")),
    # --- accepted: float64 features load as float32 --------------------------------------------
    Case("features_float64_accepted", "accepted", _data(_features_float64)),
    # --- run configs (mmalign train) ------------------------------------------------------------
    Case("config_not_toml", "config", _config(lambda c: "[data\ndataset = \n"), (r"run\.toml", r"cannot parse")),
    Case("config_top_level_list", "config", _config(lambda c: [c], ".json"), (r"run\.json", r"top level", r"object")),
    Case("config_unknown_section", "config", _config(lambda c: {**c, "optimiser": {"lr": 0.1}}),
         (r"run\.toml", r"'optimiser'", r"unknown key")),
    Case("config_unknown_data_key", "config", _config(lambda c: _set(c, "data", data_dri="/tmp")),
         (r"run\.toml", r"'data\.data_dri'", r"unknown key")),
    Case("config_wrong_literal", "config", _config(lambda c: _set(c, "data", side_info="smells")),
         (r"run\.toml", r"'data\.side_info'", r"'attributes' or 'sentences'")),
    Case("config_unknown_training_key", "config",
         _config(lambda c: _set(c, "aligner", training={"epoch": 3, "batch_size": 16})),
         (r"run\.toml", r"'training\.epoch'", r"unknown key")),
    Case("config_wrong_type", "config", _config(lambda c: _set(c, "aligner", training={"epochs": 1, "batch_size": "fifty"})),
         (r"run\.toml", r"'training\.batch_size'", r"integer")),
    Case("config_negative_latent", "config", _config(lambda c: _set(c, "aligner", latent_size=-8)),
         (r"run\.toml", r"'latent_size'", r"greater than 0")),
    Case("config_zero_epochs", "config", _config(lambda c: _set(c, "aligner", training={"epochs": 0})),
         (r"run\.toml", r"'training\.epochs'", r"greater than 0")),
    Case("config_negative_hidden", "config", _config(lambda c: _modality(c, 0, hidden=[-1, 16])),
         (r"run\.toml", r"'img'", r"'hidden\.0'", r"greater than 0")),
    Case("config_unknown_modality_option", "config", _config(lambda c: _modality(c, 1, hiden=[8, 8])),
         (r"run\.toml", r"'att'", r"'hiden'", r"unknown key")),
    Case("config_unknown_modality_kind", "config", _config(lambda c: _modality(c, 0, kind="audio_embedding")),
         (r"run\.toml", r"'audio_embedding'", r"registered keys")),
    Case("config_bad_device", "config", _config(lambda c: _set(c, "aligner", device="tpu")),
         (r"run\.toml", r"'device'", r"auto, cpu, cuda")),
    Case("config_modality_options_not_table", "config", _config(lambda c: _modality(c, 0, options=5)),
         (r"run\.toml", r"'options'", r"table")),
    Case("config_modality_name_with_dot", "config", _config(lambda c: _modality(c, 0, name="img.v2")),
         (r"run\.toml", r"'img\.v2'", r"name")),
    Case("config_warmup_zero_length", "config",
         _config(lambda c: _set(c, "aligner", training={"epochs": 1, "warmup": {"kl": {"start": 0, "end": 0, "factor": 1}}})),
         (r"run\.toml", r"'training\.warmup\.kl'", r"end")),
    Case("config_betas_out_of_range", "config",
         _config(lambda c: _set(c, "aligner", training={"epochs": 1, "betas": [1.5, 0.999]})),
         (r"run\.toml", r"'training\.betas", r"less than 1")),
    Case("config_seed_too_large", "config", _config(lambda c: _set(c, "aligner", seed=2**70)),
         (r"run\.toml", r"'seed'", r"less than")),
    Case("config_dataset_missing", "config",
         _config(lambda c: _set(c, "data", dataset=str(Path(c["data"]["dataset"]).parent / "nowhere"))),
         (r"nowhere", r"not a card name", r"not a folder")),
    Case("shots_exceed_class_images", "config", _eval_shots,
         (rf"{PER_CLASS}-shot", r"class 8", rf"only {PER_CLASS} images", rf"at least {PER_CLASS + 1}")),
    Case("results_json_corrupt", "config", _results_corrupt, (r"results\.json", r"not a valid results file")),
    Case("benchmark_negative_shots", "config", lambda ws: benchmark_argv(ws.data(), ws.out(), "--shots", "-1"),
         (r"--shots", r"non-negative")),
    # --- checkpoints (mmalign eval / train --resume) ----------------------------------------------
    Case("ckpt_not_a_folder", "checkpoint", lambda ws: ["eval", str(ws.out() / "results.json")],
         (r"results\.json", r"not a checkpoint directory", r"config\.json")),
    Case("ckpt_missing_config", "checkpoint", _ckpt(lambda p: (p / "config.json").unlink()),
         (r"config\.json", r"missing", r"incomplete")),
    Case("ckpt_missing_model", "checkpoint", _ckpt(lambda p: (p / "model.safetensors").unlink()),
         (r"model\.safetensors", r"missing", r"incomplete")),
    Case("ckpt_missing_normalisers", "checkpoint", _ckpt(lambda p: (p / "normalisers.safetensors").unlink()),
         (r"normalisers\.safetensors", r"missing")),
    Case("ckpt_config_not_json", "checkpoint", _ckpt(_garbage("config.json", b"{'format_version': 1,")),
         (r"config\.json", r"not valid JSON")),
    Case("ckpt_newer_format", "checkpoint", _ckpt(_edit_config(lambda c: c.update(format_version=99))),
         (r"config\.json", r"format_version 99", r"newer", r"upgrade")),
    Case("ckpt_no_run_section", "checkpoint", _ckpt(_edit_config(lambda c: c.pop("run"))),
         (r"config\.json", r"'run'", r"mmalign train")),
    Case("ckpt_run_section_invalid", "checkpoint",
         _ckpt(_edit_config(lambda c: c["run"]["data"].update(datset="CUB"))),
         (r"config\.json", r"run\b.*'(run\.)?data\.datset'", r"unknown key")),
    Case("ckpt_modalities_not_list", "checkpoint", _ckpt(_edit_config(lambda c: c.update(modalities=5))),
         (r"config\.json", r"'modalities'", r"list")),
    Case("ckpt_aligner_not_object", "checkpoint", _ckpt(_edit_config(lambda c: c.update(aligner=[1, 2]))),
         (r"config\.json", r"'aligner'", r"object")),
    Case("ckpt_plugin_not_installed", "checkpoint", _ckpt(_edit_config(_unknown_plugin)),
         (r"ckpt", r"'audio_embedding'", r"mmalign-audio", r"no installed plugin")),
    Case("ckpt_model_truncated", "checkpoint", _ckpt(_truncate("model.safetensors", 0.5)),
         (r"model\.safetensors", r"not a readable safetensors")),
    Case("ckpt_tensor_missing", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _drop_first)),
         (r"model\.safetensors", r"missing \['")),
    Case("ckpt_tensor_extra", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _add_extra)),
         (r"model\.safetensors", r"unexpected \['encoders\.img\.extra\.weight'\]")),
    Case("ckpt_tensor_wrong_shape", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _reshape_first)),
         (r"model\.safetensors", r"has shape", r"expected")),
    Case("ckpt_normaliser_wrong_shape", "checkpoint", _ckpt(_edit_tensors("normalisers.safetensors", _norm_wrong_shape)),
         (r"normalisers\.safetensors", r"'img\.(min|scale)'", r"shape")),
    Case("state_newer_version", "checkpoint",
         _ckpt(_edit_tensors("training_state.safetensors", lambda t: None, _state_version), command="resume"),
         (r"training_state\.safetensors", r"state_version 99", r"newer")),
    Case("state_garbage", "checkpoint", _ckpt(_garbage("training_state.safetensors"), command="resume"),
         (r"training_state\.safetensors", r"not a readable safetensors")),
    Case("state_other_config", "checkpoint", _ckpt(lambda p: None, command="resume-other"),
         (r"training_state\.safetensors", r"different config", r"--resume")),
    Case("state_tensor_missing", "checkpoint",
         _ckpt(_edit_tensors("training_state.safetensors", lambda t: t.pop("rng.generator")), command="resume"),
         (r"training_state\.safetensors", r"'rng\.generator'", r"missing")),
]


# --- issue 11: validate before computing, loaded state checked for meaning, outputs ---------------
# Helpers for faults that cannot be made with files alone (as root, chmod does not stop a write).

def _deny_writes(folder: Path) -> Callable:
    """While the command runs, creating a file in ``folder`` fails with EACCES (a read-only folder)."""
    def patch(monkeypatch) -> None:
        import errno
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve() == folder.resolve():
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    return patch


def _no_room(free: int = 4096) -> Callable:
    """The file system reports ``free`` bytes free."""
    return lambda monkeypatch: monkeypatch.setattr("mmalign.outputs.free_bytes", lambda folder: free)


def _disk_full(folder: Path) -> Callable:
    """``fsync`` of any file under ``folder`` fails with ENOSPC (what a full disk reports)."""
    def patch(monkeypatch) -> None:
        import errno
        import os

        real = os.fsync

        def fsync(fd):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder.resolve())):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return patch


def _train(edit: Callable[[dict], dict] | None = None, out: Callable[[Workspace], Path] | None = None,
           extra: tuple[str, ...] = (), patch: Callable[[Workspace, Path], Callable] | None = None):
    """``mmalign train run.toml --out OUT ...``: ``edit`` changes the run config, ``out`` picks the
    output (default: the guarded ``ws.out()``), ``patch`` injects a fault."""
    def build(ws: Workspace) -> list[str]:
        cfg = run_config(ws.data())
        path = write_toml(ws.root / "run.toml", edit(cfg) if edit else cfg)
        target = out(ws) if out else ws.out()
        if patch is not None:
            ws.patches.append(patch(ws, target))
        return ["train", str(path), "--out", str(target), "--no-progress", *extra]

    return build


def _guarded_file(ws: Workspace, name: str = "run.toml") -> Path:
    """An existing file inside the guarded folder, used as a wrong output."""
    target = ws.out() / name
    target.write_text("# not a folder\n")
    return target


def _out_is_data_file(ws: Workspace) -> Path:
    folder = ws.data()
    ws.guarded.append(folder)
    return folder / "res101.mat"


def _out_under_file(ws: Workspace) -> Path:
    return ws.out() / "results.json" / "ckpt"


def _pair_weights(**weights) -> Callable[[dict], dict]:
    return lambda c: _set(c, "aligner", pair_weights=weights)


def _many_problems(cfg: dict) -> dict:
    return _set(cfg, "aligner", latent_size=-1, seed=-5, device="tpu", reduction="max", training={"epochs": 0})


def _eval(*extra: str, results: str | None = None, mutate: Callable[[Path], None] | None = None):
    """``mmalign eval CKPT --policy test ...`` on a copy of the base checkpoint."""
    def build(ws: Workspace) -> list[str]:
        ckpt = ws.ckpt()
        if results is not None:
            (ckpt / "results.json").write_text(results)
        if mutate is not None:
            mutate(ckpt)
        return ["eval", str(ckpt), *(extra or ("--policy", "test"))]

    return build


def _first_weight(change: Callable) -> Callable[[dict], None]:
    def edit(tensors: dict) -> None:
        key = sorted(k for k in tensors if k.endswith("weight"))[0]
        tensors[key] = change(tensors[key].clone())

    return edit


def _poke(value: float):
    def change(t):
        t.view(-1)[0] = value
        return t

    return change


def _norm(key: str, value: float):
    def edit(tensors: dict) -> None:
        t = tensors[key].clone()
        t[0] = value
        tensors[key] = t

    return edit


def _cfg_modality(i: int, **values) -> Callable[[dict], None]:
    return lambda c: c["modalities"][i].update(values)


def _cfg_aligner(**values) -> Callable[[dict], None]:
    return lambda c: c["aligner"].update(values)


def _state_meta(**values) -> Callable[[Path], None]:
    """Replace metadata fields of the training state (a value of None deletes the field)."""
    def meta(m: dict) -> None:
        for key, value in values.items():
            if value is None:
                m.pop(key, None)
            else:
                m[key] = value if isinstance(value, str) else value(m)

    return _edit_tensors("training_state.safetensors", lambda t: None, meta)


def _history(change: Callable[[list], object]) -> Callable[[dict], str]:
    def edit(meta: dict) -> str:
        history = json.loads(meta["history"])
        change(history)
        return json.dumps(history)

    return edit


def _state_tensors(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return _edit_tensors("training_state.safetensors", change)


def _poke_state(select: Callable[[str], bool], value: float) -> Callable[[Path], None]:
    """Set the first element of the first training-state tensor whose name ``select`` accepts."""
    def change(tensors: dict) -> None:
        key = sorted(k for k in tensors if select(k))[0]
        tensors[key] = _poke(value)(tensors[key].clone())

    return _state_tensors(change)


def _rename_optim(tensors: dict) -> None:
    key = sorted(k for k in tensors if k.startswith("optim."))[0]
    tensors["optim.x." + key.split(".", 2)[2]] = tensors.pop(key)


def _state(mutate: Callable[[Path], None]) -> Callable[[Workspace], list[str]]:
    return _ckpt(mutate, command="resume")


def _state_case(case_id: str, mutate: Callable[[Path], None], *expect: str) -> Case:
    """``mmalign train --resume`` refuses the edited training state naming the file and ``expect``."""
    return Case(case_id, "state", _state(mutate), (r"training_state\.safetensors", *expect))


def _bench(*extra: str, results: str | None = None, out: Callable[[Workspace], Path] | None = None,
           patch: Callable[[Workspace, Path], Callable] | None = None):
    """``mmalign benchmark custom --data-dir D --epochs 1 --out OUT ...``."""
    def build(ws: Workspace) -> list[str]:
        target = out(ws) if out else ws.out()
        if results is not None:
            (target / "results.json").write_text(results)
        if patch is not None:
            ws.patches.append(patch(ws, target))
        return benchmark_argv(ws.data(), target, *extra)

    return build


def _record(**changes) -> str:
    return json.dumps([{**PRIOR_RESULTS[0], **changes}])


def _cub_text(results: str | None = None, out: Callable[[Workspace], Path] | None = None):
    def build(ws: Workspace) -> list[str]:
        target = out(ws) if out else ws.out()
        if results is not None:
            (target / "results.json").write_text(results)
        return ["benchmark", "cub-text", "--seeds", "1", "--epochs", "1", "--out", str(target), "--no-progress"]

    return build


def _pickle(dst: Callable[[Workspace, Path, Path], Path], patch: Callable[[Path], Callable] | None = None,
            src_bytes: bytes | None = None):
    """``mmalign data convert-pickle SRC DST`` with SRC (and a previous DST) in the guarded folder."""
    def build(ws: Workspace) -> list[str]:
        import pickle

        out = ws.out()
        src = out / "CUB_supporting_data.p"
        src.write_bytes(src_bytes if src_bytes is not None else
                        pickle.dumps({"train_seen": {"att": np.ones((3, 4), np.float32)}}))
        target = dst(ws, out, src)
        if patch is not None:
            ws.patches.append(patch(out))
        return ["data", "convert-pickle", str(src), str(target)]

    return build


def _previous_dst(ws: Workspace, out: Path, src: Path) -> Path:
    dst = out / "sentences.safetensors"
    dst.write_bytes(b"previous conversion, must survive")
    return dst


def _hardlink(ws: Workspace, out: Path, src: Path) -> Path:
    import os

    os.link(src, out / "linked.p")
    return out / "linked.p"


def _symlink(ws: Workspace, out: Path, src: Path) -> Path:
    (out / "alias.safetensors").symlink_to(src)
    return out / "alias.safetensors"


def _dst_folder(ws: Workspace, out: Path, src: Path) -> Path:
    (out / "folder.safetensors").mkdir()
    (out / "folder.safetensors" / "keep.txt").write_text("keep\n")
    return out / "folder.safetensors"


NO_CUDA = (pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"),)

NEW_CASES: list[Case] = [
    # --- run configs: sizes that would not fit in memory, pair weights, many problems -----------------
    Case("config_latent_size_absurd", "config", _train(lambda c: _set(c, "aligner", latent_size=10**9)),
         (r"run\.toml", r"'latent_size'", r"GiB", r"free")),
    Case("config_hidden_absurd", "config", _train(lambda c: _modality(c, 0, hidden=[10**10, 16])),
         (r"run\.toml", r"'img'", r"'hidden'", r"GiB")),
    Case("config_hidden_beyond_int64", "config", _train(lambda c: _modality(c, 1, hidden=[8, 10**20])),
         (r"run\.toml", r"'att'", r"'hidden'", r"2\^60")),
    Case("config_latent_beyond_int64", "config", _train(lambda c: _set(c, "aligner", latent_size=10**30)),
         (r"run\.toml", r"'latent_size'", r"2\^60")),
    Case("config_many_problems_one_line", "config", _train(_many_problems),
         (r"run\.toml", r"'latent_size'", r"and \d+ more")),
    Case("config_pair_weight_unknown_term", "config", _train(_pair_weights(**{"cross/att->imgg": 0.5})),
         (r"pair_weights", r"cross/att->imgg")),
    Case("config_pair_weight_unknown_family", "config", _train(_pair_weights(**{"crosss/att->img": 0.5})),
         (r"pair_weights", r"crosss/att->img")),
    Case("config_pair_weight_unknown_modality", "config", _train(_pair_weights(**{"recon/audio": 2.0})),
         (r"pair_weights", r"recon/audio")),
    Case("config_pair_weight_negative", "config", _train(_pair_weights(**{"cross/att->img": -1.0})),
         (r"run\.toml", r"pair_weights", r"greater than or equal to 0")),
    Case("config_pair_weight_not_number", "config", _train(_pair_weights(**{"cross/att->img": "half"})),
         (r"run\.toml", r"pair_weights", r"number")),
    Case("config_data_not_table", "config", _config(lambda c: {**c, "data": "CUB"}, ".json"),
         (r"run\.json", r"'data'", r"valid dictionary|object|DataSpec")),
    Case("config_modalities_not_list", "config", _config(lambda c: {**c, "modalities": 5}, ".json"),
         (r"run\.json", r"'modalities'", r"list")),
    Case("config_one_modality", "config", _config(lambda c: {**c, "modalities": c["modalities"][:1]}),
         (r"run\.toml", r"at least two modalities")),
    Case("config_duplicate_modality_names", "config",
         _config(lambda c: _modality(c, 1, name="img")), (r"run\.toml", r"unique", r"'img'")),
    Case("config_json_garbage", "config", _config(lambda c: '{"data": {"dataset": ', ".json"),
         (r"run\.json", r"cannot parse")),
    Case("config_not_utf8", "config",
         lambda ws: (lambda p: (p.write_bytes(b'[data]\ndataset = "\xff\xfe"\n'), ["train", str(p), "--out", str(ws.out())])[1])(
             ws.root / "run.toml"), (r"run\.toml", r"cannot parse", r"utf-8")),
    Case("config_file_missing", "config", lambda ws: ["train", str(ws.root / "nope.toml"), "--out", str(ws.out())],
         (r"nope\.toml", r"not found")),
    # --- output locations (checked before training) ---------------------------------------------------
    Case("train_out_is_a_file", "output", _train(out=_guarded_file), (r"--out", r"run\.toml", r"is a file")),
    Case("train_out_is_the_config", "output",
         lambda ws: (lambda p: ["train", str(p), "--out", str(p), "--no-progress"])(
             write_toml(ws.out() / "run.toml", run_config(ws.data()))),
         (r"--out", r"run\.toml", r"is a file")),
    Case("train_out_is_a_data_file", "output", _train(out=_out_is_data_file), (r"--out", r"res101\.mat", r"is a file")),
    Case("train_out_under_a_file", "output", _train(out=_out_under_file),
         (r"--out", r"results\.json", r"is a file, not a folder")),
    Case("train_out_not_writable", "output", _train(patch=lambda ws, out: _deny_writes(out)),
         (r"--out", r"cannot be written", r"permission denied")),
    Case("train_out_parent_not_writable", "output",
         _train(out=lambda ws: ws.out() / "new" / "ckpt", patch=lambda ws, out: _deny_writes(out.parent.parent)),
         (r"--out", r"ckpt", r"nearest existing parent", r"permission denied")),
    Case("train_out_no_room", "output", _train(patch=lambda ws, out: _no_room()),
         (r"--out", r"not enough room", r"free")),
    Case("train_checkpoint_every_zero", "cli", _train(extra=("--checkpoint-every", "0")),
         (r"--checkpoint-every", r"at least 1")),
    Case("train_threads_zero", "cli", _train(extra=("--threads", "0")), (r"--threads", r"at least 1")),
    Case("train_epochs_zero", "cli", _train(extra=("--epochs", "0")), (r"run\.toml", r"'training\.epochs'", r"greater than 0")),
    Case("train_seed_negative", "cli", _train(extra=("--seed", "-1")), (r"run\.toml", r"'seed'", r"greater than or equal to 0")),
    Case("train_device_cuda_missing", "cli", _train(extra=("--device", "cuda")), (r"run\.toml", r"CUDA is not available"),
         NO_CUDA),
    Case("benchmark_out_is_a_file", "output", _bench(out=lambda ws: _guarded_file(ws, "results.txt")),
         (r"--out", r"results\.txt", r"is a file")),
    Case("benchmark_out_under_a_file", "output", _bench(out=_out_under_file), (r"--out", r"is a file, not a folder")),
    Case("benchmark_out_not_writable", "output", _bench(patch=lambda ws, out: _deny_writes(out)),
         (r"--out", r"cannot be written", r"permission denied")),
    Case("benchmark_out_no_room", "output", _bench(patch=lambda ws, out: _no_room(0)), (r"--out", r"not enough room")),
    Case("eval_checkpoint_not_writable", "output",
         lambda ws: (lambda ck: (ws.patches.append(_deny_writes(ck)), ["eval", str(ck), "--policy", "test"])[1])(ws.ckpt()),
         (r"checkpoint", r"cannot be written", r"permission denied")),
    Case("cub_text_out_is_a_file", "output", _cub_text(out=lambda ws: _guarded_file(ws, "report")),
         (r"--out", r"report", r"is a file")),
    Case("cub_text_out_holds_a_corrupt_results_file", "results", _cub_text(results="[{\"seed\": 0,"),
         (r"results\.json", r"not a valid results file")),
    # --- every requested run checked before the first one starts --------------------------------------
    Case("benchmark_second_shots_too_many", "cli", _bench("--shots", "0", str(PER_CLASS), "--policy", "test"),
         (rf"--shots {PER_CLASS}", r"only", r"test images")),
    Case("benchmark_second_seed_out_of_range", "cli",
         _bench("--first-seed", str(2**63 - 1), "--seeds", "2", "--policy", "test"), (r"'seed'", r"less than")),
    Case("benchmark_first_seed_negative", "cli", _bench("--first-seed", "-1", "--policy", "test"),
         (r"'seed'", r"greater than or equal to 0")),
    Case("benchmark_max_classifier_epochs_zero", "cli", _bench("--policy", "test", "--max-classifier-epochs", "0"),
         (r"--max-classifier-epochs", r"at least 1")),
    Case("benchmark_classifier_epochs_zero", "cli", _bench("--classifier-epochs", "0"), (r"--classifier-epochs", r"at least 1")),
    Case("benchmark_epochs_zero", "cli", lambda ws: [*benchmark_argv(ws.data(), ws.out()), "--epochs", "0"],
         (r"--epochs", r"at least 1")),
    Case("benchmark_seeds_zero", "cli", _bench("--seeds", "0"), (r"--seeds", r"at least 1")),
    Case("benchmark_threads_zero", "cli", _bench("--threads", "0"), (r"--threads", r"at least 1")),
    Case("benchmark_no_epoch_table", "cli", _bench(), (r"no classifier-epoch table", r"--classifier-epochs")),
    Case("benchmark_device_cuda_missing", "cli", _bench("--device", "cuda", "--policy", "test"), (r"CUDA is not available",),
         NO_CUDA),
    Case("eval_second_shots_too_many", "cli", _eval("--policy", "test", "--shots", "0", str(PER_CLASS)),
         (rf"{PER_CLASS}-shot", rf"only {PER_CLASS} images")),
    Case("eval_second_shots_negative", "cli", _eval("--policy", "test", "--shots", "0", "-2"),
         (r"--shots", r"non-negative", r"-2")),
    Case("eval_no_epoch_table", "cli", _eval("--shots", "0", "1"), (r"no fixed classifier epochs", r"policy")),
    # --- checkpoints checked for meaning --------------------------------------------------------------
    Case("ckpt_weight_nan", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _first_weight(_poke(float("nan"))))),
         (r"model\.safetensors", r"tensor '", r"NaN or infinite")),
    Case("ckpt_weight_inf", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _first_weight(_poke(float("inf"))))),
         (r"model\.safetensors", r"NaN or infinite")),
    Case("ckpt_weight_float64", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _first_weight(lambda t: t.double()))),
         (r"model\.safetensors", r"dtype float64", r"expected float32")),
    Case("ckpt_weight_int64", "checkpoint", _ckpt(_edit_tensors("model.safetensors", _first_weight(lambda t: t.long()))),
         (r"model\.safetensors", r"dtype int64", r"expected float32")),
    Case("ckpt_normaliser_scale_nan", "checkpoint", _ckpt(_edit_tensors("normalisers.safetensors", _norm("img.scale", float("nan")))),
         (r"normalisers\.safetensors", r"'img\.scale'", r"NaN or infinite")),
    Case("ckpt_normaliser_scale_zero", "checkpoint", _ckpt(_edit_tensors("normalisers.safetensors", _norm("img.scale", 0.0))),
         (r"normalisers\.safetensors", r"'img'", r"'scale'", r"finite and positive")),
    Case("ckpt_normaliser_scale_negative", "checkpoint",
         _ckpt(_edit_tensors("normalisers.safetensors", _norm("img.scale", -2.0))),
         (r"normalisers\.safetensors", r"'scale'", r"positive")),
    Case("ckpt_normaliser_min_inf", "checkpoint", _ckpt(_edit_tensors("normalisers.safetensors", _norm("img.min", float("-inf")))),
         (r"normalisers\.safetensors", r"'img\.min'", r"NaN or infinite")),
    Case("ckpt_normaliser_scale_missing", "checkpoint",
         _ckpt(_edit_tensors("normalisers.safetensors", lambda t: t.pop("img.scale"))),
         (r"normalisers\.safetensors", r"'img'", r"'min' and 'scale'")),
    Case("ckpt_dim_boolean", "checkpoint", _ckpt(_edit_config(_cfg_modality(0, dim=True))),
         (r"config\.json", r"positive integer 'dim'")),
    Case("ckpt_dim_zero", "checkpoint", _ckpt(_edit_config(_cfg_modality(1, dim=0))), (r"config\.json", r"'dim'")),
    Case("ckpt_latent_size_text", "checkpoint", _ckpt(_edit_config(_cfg_aligner(latent_size="big"))),
         (r"config\.json", r"'latent_size'", r"integer")),
    Case("ckpt_latent_size_absurd", "checkpoint", _ckpt(_edit_config(_cfg_aligner(latent_size=10**9))),
         (r"config\.json", r"'latent_size'", r"GiB")),
    Case("ckpt_modality_options_invalid", "checkpoint", _ckpt(_edit_config(_cfg_modality(0, options={"hidden": "wide"}))),
         (r"config\.json", r"'img'", r"'hidden'")),
    Case("ckpt_modality_entry_not_object", "checkpoint", _ckpt(_edit_config(lambda c: c["modalities"].__setitem__(0, 5))),
         (r"config\.json", r"malformed modality entry")),
    # --- results files: refused clearly, never overwritten ---------------------------------------------
    Case("eval_results_corrupt", "results", _eval(results='[{"dataset": "CUB", "S": 1.0},\n{"data'),
         (r"results\.json", r"not a valid results file", r"not overwritten")),
    Case("eval_results_object", "results", _eval(results='{"runs": [], "note": "not a results file"}'),
         (r"results\.json", r"JSON list of records", r"dict")),
    Case("eval_results_record_not_object", "results", _eval(results="[1, 2]"),
         (r"results\.json", r"record 0", r"object")),
    Case("eval_results_shots_text", "results", _eval(results=_record(shots="five")),
         (r"results\.json", r"record 0", r"'shots'", r"integer")),
    Case("eval_results_score_nan", "results", _eval(results=_record(H=float("nan"))),
         (r"results\.json", r"record 0", r"'H'", r"finite number")),
    Case("eval_results_is_a_folder", "results",
         _eval(mutate=lambda ck: ((ck / "results.json").unlink(), (ck / "results.json").mkdir(),
                                  (ck / "results.json" / "keep").write_text("x"))),
         (r"results\.json", r"cannot be read")),
    Case("benchmark_results_object", "results", _bench(results='{"records": 3}'),
         (r"results\.json", r"JSON list of records")),
    Case("benchmark_results_seed_text", "results", _bench(results=_record(seed="zero")),
         (r"results\.json", r"'seed'", r"integer")),
    Case("benchmark_results_seed_boolean", "results", _bench(results=_record(seed=True)),
         (r"results\.json", r"'seed'", r"integer")),
    Case("benchmark_results_score_infinite", "results", _bench(results=_record(S=float("inf"))),
         (r"results\.json", r"'S'", r"finite")),
    Case("benchmark_results_seconds_wrong", "results", _bench(results=_record(seconds={"vae": "slow"})),
         (r"results\.json", r"'seconds'")),
    Case("benchmark_results_synthetic_text", "results", _bench(results=_record(synthetic="no")),
         (r"results\.json", r"'synthetic'", r"true or false")),
    Case("benchmark_results_not_utf8", "results", lambda ws: (
        (ws.out() / "results.json").write_bytes(b"[\xff\xfe]"), benchmark_argv(ws.data(), ws.guarded[-1]))[1],
         (r"results\.json", r"not a valid results file")),
    # --- training states (train --resume) checked for meaning -----------------------------------------
    _state_case("state_epochs_done_negative", _state_meta(epochs_done="-1"), r"'epochs_done'", r"non-negative integer"),
    _state_case("state_epochs_done_text", _state_meta(epochs_done="three"), r"'epochs_done'", r"integer"),
    _state_case("state_epochs_done_beyond_run", _state_meta(epochs_done="99"),
                r"'epochs_done'", r"beyond the run's 1 epochs"),
    _state_case("state_version_text", _state_meta(state_version="one"), r"'state_version'", r"integer"),
    _state_case("state_history_missing", _state_meta(history=None), r"'history'", r"missing"),
    _state_case("state_history_not_json", _state_meta(history="[{"), r"'history'", r"not valid JSON"),
    _state_case("state_history_not_list", _state_meta(history='{"epoch": 0}'), r"'history'", r"list"),
    _state_case("state_history_too_short", _state_meta(history="[]"), r"'history'", r"0 epoch", r"'epochs_done' is 1"),
    _state_case("state_history_epoch_text", _state_meta(history=_history(lambda h: h[0].update(epoch="0"))),
                r"'history\[0\]\.epoch'", r"integer 0"),
    _state_case("state_history_epoch_wrong", _state_meta(history=_history(lambda h: h[0].update(epoch=7))),
                r"'history\[0\]\.epoch'"),
    _state_case("state_history_loss_nan", _state_meta(history=_history(lambda h: h[0]["terms"].update(loss=float("nan")))),
                r"'history\[0\]\.terms'", r"finite"),
    _state_case("state_history_seconds_text", _state_meta(history=_history(lambda h: h[0].update(seconds="fast"))),
                r"'history\[0\]\.seconds'", r"number"),
    _state_case("state_history_unknown_field", _state_meta(history=_history(lambda h: h[0].update(lr=0.1))),
                r"'history\[0\]\.lr'", r"not a field"),
    _state_case("state_history_field_missing", _state_meta(history=_history(lambda h: h[0].pop("terms"))),
                r"'history\[0\]\.terms'", r"missing"),
    _state_case("state_config_not_object", _state_meta(config="[1]"), r"'config'", r"object"),
    _state_case("state_optimizer_not_json", _state_meta(optimizer="{'lr'"), r"'optimizer'", r"not valid JSON"),
    _state_case("state_optimizer_groups_wrong", _state_meta(optimizer='{"param_groups": "adam"}'),
                r"'optimizer'", r"param_groups"),
    _state_case("state_optimizer_tensor_name", _state_tensors(_rename_optim), r"'optim\.x\.", r"optim\.<n>\.<name>"),
    _state_case("state_generator_wrong_size", _state_tensors(lambda t: t.update({"rng.generator": t["rng.generator"][:100].clone()})),
                r"'rng\.generator'", r"\d+ uint8", r"\(100,\)"),
    _state_case("state_generator_wrong_dtype", _state_tensors(lambda t: t.update({"rng.generator": t["rng.generator"].float()})),
                r"'rng\.generator'", r"uint8", r"float32"),
    _state_case("state_model_weight_nan", _poke_state(lambda k: k.startswith("model.") and k.endswith("weight"), float("nan")),
                r"'model\.", r"NaN or infinite"),
    _state_case("state_optimizer_moment_inf", _poke_state(lambda k: k.endswith("exp_avg_sq"), float("inf")),
                r"'optim\.", r"NaN or infinite"),
    # --- pickles: never written over the source, out-of-disk leaves the previous file -----------------
    Case("pickle_dst_is_src", "pickle", _pickle(lambda ws, out, src: src),
         (r"destination", r"CUB_supporting_data\.p", r"one of this command's inputs")),
    Case("pickle_dst_hardlink_to_src", "pickle", _pickle(_hardlink), (r"linked\.p", r"one of this command's inputs")),
    Case("pickle_dst_symlink_to_src", "pickle", _pickle(_symlink), (r"alias\.safetensors", r"one of this command's inputs")),
    Case("pickle_dst_is_folder", "pickle", _pickle(_dst_folder), (r"folder\.safetensors", r"is a folder")),
    Case("pickle_dst_under_file", "pickle", _pickle(lambda ws, out, src: out / "results.json" / "x.safetensors"),
         (r"results\.json", r"is a file, not a folder")),
    Case("pickle_dst_disk_full", "pickle", _pickle(_previous_dst, patch=_disk_full),
         (r"sentences\.safetensors", r"no space left", r"previous file is unchanged")),
    Case("pickle_dst_not_writable", "pickle", _pickle(_previous_dst, patch=_deny_writes),
         (r"destination", r"cannot be written", r"permission denied")),
    Case("pickle_src_missing", "pickle",
         lambda ws: ["data", "convert-pickle", str(ws.out() / "absent.p"), str(ws.out() / "x.safetensors")],
         (r"absent\.p", r"cannot be read|not found|no such")),
    Case("pickle_src_empty", "pickle", _pickle(_previous_dst, src_bytes=b""), (r"CUB_supporting_data\.p", r"empty")),
]
CASES += NEW_CASES

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case ids"


def case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def make_checkpoint(root: Path) -> Path:
    """A valid checkpoint (1 epoch, tiny networks) with a ``run`` section and a training state."""
    from mmalign.cli import main

    folder = write_dataset(root / "data")
    cfg = write_toml(root / "run.toml", run_config(folder))
    ckpt = root / "ckpt"
    code = main(["train", str(cfg), "--out", str(ckpt), "--checkpoint-every", "1", "--keep-state", "--no-progress"])
    assert code == 0, f"could not build the base checkpoint (exit {code})"
    return ckpt


def generate(root: str | Path, cases: list[Case] | None = None, base: Path | None = None) -> dict[str, list[str]]:
    """Write every case under ``root/<id>/``; returns id -> argv (also saved as ``argv.json``).

    ``base``: a valid checkpoint from :func:`make_checkpoint` (made under ``root/_base`` if None).
    """
    root = Path(root)
    base = base or make_checkpoint(root / "_base")
    out: dict[str, list[str]] = {}
    for c in cases or CASES:
        ws = Workspace(root / c.id, checkpoint=base)
        ws.root.mkdir(parents=True)
        out[c.id] = c.build(ws)
        (ws.root / "argv.json").write_text(json.dumps(out[c.id]))
    return out


if __name__ == "__main__":  # pragma: no cover
    argvs = generate(sys.argv[1])
    print(f"{len(argvs)} cases written to {sys.argv[1]}")
