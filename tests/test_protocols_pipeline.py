"""Latent sets, epoch policies and ``evaluate``: with a toy linear aligner, then a real tiny Aligner."""

import numpy as np
import pytest
import torch

import mmalign
from mmalign.errors import ConfigError, DataError
from mmalign.protocols import (
    build_task, evaluate, fewshot_split, fixed_epochs, repeat_to_count, select_epochs, training_latents, validation_view,
)
from mmalign.protocols.policies import best_epoch
from mmalign.recipes import load_recipe
from conftest import REAL_DATA

LATENT = 4


class ToyModality:
    def __init__(self, name, source, granularity):
        self.name, self.source, self.granularity = name, source, granularity


class ToyAligner:
    """The Aligner contract with fixed random linear encoders; records every encoded row."""

    def __init__(self, dims, seed=0, noise=True):
        g = torch.Generator().manual_seed(seed)
        self.modalities = {"img": ToyModality("img", "features", "sample"),
                           "att": ToyModality("att", "attributes", "class")}
        self.weights = {n: torch.randn(d, LATENT, generator=g) for n, d in dims.items()}
        self.device = torch.device("cpu")
        self.noise = noise
        self.encoded = {n: [] for n in dims}

    def encode(self, name, rows):
        x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        self.encoded[name].append(x.clone())
        mu = x @ self.weights[name]
        return mu, torch.full_like(mu, -1.0)

    def sample_latents(self, mu, logvar, generator=None):
        if not self.noise:
            return mu.clone()
        return mu + torch.exp(logvar) * torch.randn((mu.shape[0], 1), generator=generator, dtype=mu.dtype)


def toy_data(classes=12, unseen=4, per_class=20, feat_dim=6, att_dim=5, seed=0, with_val=True):
    """Classes < classes-unseen are seen; the first half of the seen classes form 'train', the rest 'val'."""
    rng = np.random.default_rng(seed)
    att = rng.random((classes, att_dim)).astype(np.float32)
    labels = np.repeat(np.arange(classes), per_class)
    mix = rng.normal(size=(att_dim, feat_dim))
    feats = (att[labels] @ mix + 0.05 * rng.normal(size=(labels.size, feat_dim))).astype(np.float32)
    seen = labels < classes - unseen
    seen_idx = np.flatnonzero(seen)
    test_seen = seen_idx[::5]
    trainval = np.setdiff1d(seen_idx, test_seen)
    splits = {"trainval": trainval, "test_seen": test_seen, "test_unseen": np.flatnonzero(~seen)}
    if with_val:
        n_train_classes = (classes - unseen) // 2 + 1
        splits["train"] = trainval[labels[trainval] < n_train_classes]
        splits["val"] = trainval[labels[trainval] >= n_train_classes]
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"class{i}" for i in range(classes)],
        sample_features={"features": feats}, class_features={"attributes": att}, splits=splits, name="toy",
    )


def toy_aligner(data, **kw):
    return ToyAligner({"img": data.sample_features["features"].shape[1], "att": data.class_features["attributes"].shape[1]}, **kw)


# -- latents -------------------------------------------------------------------------------------


def test_repeat_to_count_repeats_items_in_order_and_takes_the_first_count():
    assert repeat_to_count(np.array([7, 8, 9]), 7).tolist() == [7, 8, 9, 7, 8, 9, 7]
    assert repeat_to_count(np.array([7, 8, 9]), 2).tolist() == [7, 8]
    assert repeat_to_count(np.array([7]), 3).tolist() == [7, 7, 7]
    with pytest.raises(DataError):
        repeat_to_count(np.array([], dtype=int), 3)


# (seen images, seen embeddings, unseen embeddings, unseen images) per class in the authors' code
AUTHORS_LATENTS = {"gzsl": (200, 0, 400, 0), "gzsl_fewshot": (200, 0, 200, 200), "zsl": (0, 0, 200, 0),
                   "zsl_fewshot": (0, 0, 200, 200)}


@pytest.mark.parametrize("key", sorted(AUTHORS_LATENTS))
def test_training_latents_counts_per_class_follow_the_given_counts(key):
    data = toy_data()
    counts = AUTHORS_LATENTS[key]
    split = fewshot_split(data, 2, seed=0) if key.endswith("fewshot") else None
    latents = training_latents(
        toy_aligner(data), data, counts, seen_classes=data.seen_classes, unseen_classes=data.unseen_classes,
        generator=torch.Generator().manual_seed(0), image="img", side="att", fewshot=split,
    )
    per_class = torch.bincount(latents.y, minlength=data.num_classes).tolist()
    seen_count = counts[0] + counts[1]
    unseen_count = counts[2] + counts[3]
    expected = [seen_count if c in data.seen_classes else unseen_count for c in range(data.num_classes)]
    assert per_class == expected
    assert latents.x.shape == (sum(expected), LATENT)


def test_training_latents_labels_match_the_authors_cub_classifier_training_set():
    """The released code's 50,000 GZSL training labels for CUB (saving_training_results branch):
    150 seen classes x 200 image latents, then 50 unseen classes x 400 attribute latents."""
    meta = np.load(REAL_DATA / "cub_labels.npz", allow_pickle=False)
    n = meta["labels"].size
    data = mmalign.AlignmentData(
        labels=meta["labels"].astype(np.int64), class_names=[str(i) for i in range(200)],
        sample_features={"features": np.zeros((n, 2), np.float32)}, class_features={"attributes": np.zeros((200, 3), np.float32)},
        splits={k: meta[f"{k}_loc"].astype(np.int64) for k in ("trainval", "test_seen", "test_unseen")},
        name="CUB",
    )
    latents = training_latents(
        ToyAligner({"img": 2, "att": 3}), data, load_recipe("cada_vae").classifier.latents["gzsl"],
        seen_classes=data.seen_classes, unseen_classes=data.unseen_classes, generator=torch.Generator(),
        image="img", side="att",
    )
    assert np.array_equal(latents.y.numpy(), meta["classifier_train_labels"])


def test_training_latents_repeat_a_small_class_in_order_and_keep_the_reference_group_order():
    data = toy_data()
    aligner = toy_aligner(data, noise=False)
    split = fewshot_split(data, 3, seed=2)
    latents = training_latents(
        aligner, data, (25, 0, 2, 7), seen_classes=data.seen_classes, unseen_classes=data.unseen_classes,
        generator=torch.Generator(), image="img", side="att", fewshot=split,
    )
    feats = torch.as_tensor(data.sample_features["features"])
    w = aligner.weights["img"]
    # group 1: seen images, 25 per class: the class's trainval images (split order) repeated in order
    tv = data.splits["trainval"]
    first = tv[data.labels[tv] == 0]                      # 16 images < 25
    assert torch.allclose(latents.x[:25], feats[np.resize(first, 25)] @ w, atol=1e-5)
    # group 2 follows all seen images: unseen images, the 3 moved shots of each class, repeated to 7
    start = 25 * len(data.seen_classes)
    shots = split.train[data.labels[split.train] == data.unseen_classes[0]]
    assert torch.allclose(latents.x[start:start + 7], feats[np.resize(shots, 7)] @ w, atol=1e-5)
    # group 4 (no seen embeddings asked): unseen class embeddings, each repeated 2 times, last
    att = torch.as_tensor(data.class_features["attributes"])
    tail = latents.x[-2 * len(data.unseen_classes):]
    assert torch.allclose(tail, att[np.repeat(data.unseen_classes, 2)] @ aligner.weights["att"], atol=1e-5)
    assert latents.y[-1].item() == data.unseen_classes[-1]


def test_training_latents_noise_is_seeded_and_each_repeat_differs():
    data = toy_data()
    args = dict(seen_classes=data.seen_classes, unseen_classes=data.unseen_classes, image="img", side="att")
    counts = (0, 0, 5, 0)
    a = training_latents(toy_aligner(data), data, counts, generator=torch.Generator().manual_seed(1), **args)
    b = training_latents(toy_aligner(data), data, counts, generator=torch.Generator().manual_seed(1), **args)
    c = training_latents(toy_aligner(data), data, counts, generator=torch.Generator().manual_seed(2), **args)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert torch.unique(a.x[:5], dim=0).shape[0] == 5       # one class embedding, five different latents


def test_training_latents_encode_distinct_rows_in_chunks():
    data = toy_data()
    aligner = toy_aligner(data)
    training_latents(aligner, data, (200, 0, 400, 0), seen_classes=data.seen_classes,
                     unseen_classes=data.unseen_classes, generator=torch.Generator(), image="img", side="att", chunk=7)
    sizes = [x.shape[0] for x in aligner.encoded["img"]]
    assert max(sizes) <= 7 and sum(sizes) == len(data.splits["trainval"])
    assert sum(x.shape[0] for x in aligner.encoded["att"]) == len(data.unseen_classes)


def test_training_latents_need_a_fewshot_split_for_unseen_images():
    data = toy_data()
    with pytest.raises(ConfigError, match="few-shot"):
        training_latents(toy_aligner(data), data, (200, 0, 200, 200), seen_classes=data.seen_classes,
                         unseen_classes=data.unseen_classes, generator=torch.Generator(), image="img", side="att")


def test_build_task_zsl_maps_unseen_classes_and_removes_the_shots_from_test():
    data = toy_data()
    task = build_task(toy_aligner(data), data, "zsl", 2, seed=0, recipe=load_recipe("cada_vae"))
    assert task.num_classes == 4 and task.test_seen is None
    assert task.train.y.min() == 0 and task.train.y.max() == 3
    assert len(task.test_unseen) == len(data.splits["test_unseen"]) - 2 * 4
    assert np.intersect1d(task.split.train, task.split.test).size == 0


# -- epoch policies ------------------------------------------------------------------------------


def test_fixed_epochs_returns_the_table_values():
    assert fixed_epochs("CUB", "gzsl", 0) == 23
    assert fixed_epochs("cub", "zsl", 5) == 73
    assert fixed_epochs("SUN", "zsl", 1) == 96
    assert fixed_epochs("AWA2", "gzsl", 10) == 86
    with pytest.raises(ConfigError, match="policy='val'"):
        fixed_epochs("FLO", "gzsl", 0)
    with pytest.raises(ConfigError):
        fixed_epochs("CUB", "gzsl", 3)


def poisoned(data):
    """The same data with every test image (and every test-only class embedding) set to NaN."""
    feats = data.sample_features["features"].copy()
    att = data.class_features["attributes"].copy()
    feats[data.splits["test_seen"]] = np.nan
    feats[data.splits["test_unseen"]] = np.nan
    att[data.unseen_classes] = np.nan
    return mmalign.AlignmentData(labels=data.labels, class_names=data.class_names, sample_features={"features": feats},
                                 class_features={"attributes": att}, splits=data.splits, name=data.name)


def test_validation_view_holds_only_train_and_val_rows():
    data = toy_data()
    view = validation_view(poisoned(data), seed=0).validate()
    assert np.isfinite(view.sample_features["features"]).all()
    assert np.isfinite(view.class_features["attributes"]).all()
    train_classes = np.unique(data.labels[data.splits["train"]])
    val_classes = np.unique(data.labels[data.splits["val"]])
    assert view.meta["class_ids"] == sorted(np.union1d(train_classes, val_classes).tolist())
    assert len(view.splits["test_unseen"]) == len(data.splits["val"])
    assert len(view.splits["trainval"]) + len(view.splits["test_seen"]) == len(data.splits["train"])
    assert set(view.classes_of("test_seen")) == set(view.classes_of("trainval"))      # held out per class
    assert np.array_equal(view.unseen_classes, np.arange(len(train_classes), view.num_classes))


def test_validation_view_carries_the_texts_of_its_rows_and_classes():
    data = toy_data()
    data.sample_texts["caption"] = [f"image {i} of class {c}" for i, c in enumerate(data.labels)]
    data.class_texts["wiki"] = [[f"class {c}", "a bird"] for c in range(data.num_classes)]
    view = validation_view(data.validate(), seed=0).validate()
    ids = view.meta["class_ids"]
    assert view.class_texts["wiki"] == [[f"class {c}", "a bird"] for c in ids]
    for text, label in zip(view.sample_texts["caption"], view.labels):
        assert text.endswith(f"of class {ids[label]}")


def test_validation_view_requires_train_and_val_splits():
    with pytest.raises(DataError, match="'train' and 'val'"):
        validation_view(toy_data(with_val=False))


@pytest.mark.parametrize("setting,shots", [("gzsl", 0), ("zsl", 1)])
def test_select_epochs_never_reads_test_data(setting, shots):
    data = poisoned(toy_data(per_class=30))
    view = validation_view(data, seed=0)
    aligner = toy_aligner(view)
    chosen = select_epochs(aligner, view, setting, shots, max_epochs=4, seed=0)
    encoded = torch.cat(aligner.encoded["img"])
    assert torch.isfinite(encoded).all() and torch.isfinite(torch.cat(aligner.encoded["att"])).all()
    assert 1 <= chosen.epochs <= 4 and len(chosen.history) == 4
    assert chosen.epochs == best_epoch(chosen.history, chosen.metric)
    assert chosen.metric == ("H" if setting == "gzsl" else "top1")


def test_best_epoch_takes_the_earliest_maximum():
    assert best_epoch([{"H": 1.0}, {"H": 3.0}, {"H": 3.0}, {"H": 2.0}], "H") == 2


# -- evaluate ------------------------------------------------------------------------------------


def test_evaluate_gzsl_result_records_scores_policy_epochs_and_phases():
    data = toy_data()
    result = evaluate(toy_aligner(data), data, "gzsl", 0, policy="manual", epochs=2, seed=3)
    assert {"S", "U", "H"} <= set(result) and "top1" not in result
    assert (result["setting"], result["shots"], result["seed"], result["policy"], result["classifier_epochs"]) == (
        "gzsl", 0, 3, "manual", 2)
    assert result["selected_on"] == "given"
    assert set(result["seconds"]) == {"sampling", "classifier"}
    assert result["num_classes"] == data.num_classes and result["train_latents"] == 8 * 200 + 4 * 400


def test_evaluate_same_seed_same_result_fast_equals_reference():
    data = toy_data()
    a = evaluate(toy_aligner(data), data, "zsl", 2, policy="manual", epochs=2, seed=1)
    b = evaluate(toy_aligner(data), data, "zsl", 2, policy="manual", epochs=2, seed=1, reference=True)
    assert a["top1"] == b["top1"] and a["classifier"] == "resident" and b["classifier"] == "reference"
    assert "S" not in a and a["num_classes"] == 4 and a["adam"] == "fused"
    c = evaluate(toy_aligner(data), data, "zsl", 2, policy="manual", epochs=2, seed=1, adam="single_tensor")
    d = evaluate(toy_aligner(data), data, "zsl", 2, policy="manual", epochs=2, seed=1, adam="single_tensor", reference=True)
    assert c["top1"] == d["top1"] and c["adam"] == "single_tensor"


def test_evaluate_fixed_policy_uses_the_table_for_the_dataset_name():
    data = toy_data()
    result = evaluate(toy_aligner(data), data, "zsl", 0, seed=0, dataset_name="CUB")
    assert result["policy"] == "fixed" and result["classifier_epochs"] == 22 and result["selected_on"] == "table"
    with pytest.raises(ConfigError, match="policy='manual'"):
        evaluate(toy_aligner(data), data, "zsl", 0, epochs=3, dataset_name="CUB")
    with pytest.raises(ConfigError, match="no fixed classifier epochs"):
        evaluate(toy_aligner(data), data, "zsl", 0)                 # dataset "toy" is not in the table


def test_evaluate_val_policy_selects_on_the_view_and_records_it():
    data = toy_data(per_class=30)
    view = validation_view(data, seed=0)
    result = evaluate(toy_aligner(data), data, "gzsl", 0, policy="val", selection_aligner=toy_aligner(view),
                      max_epochs=3, seed=0)
    assert result["policy"] == "val" and result["selected_on"] == "val" and 1 <= result["classifier_epochs"] <= 3
    assert result["selection"]["on"] == "val" and result["selection"]["metric"] == "H"
    assert result["selection"]["data"] == "toy/val" and "selection" in result["seconds"]
    explicit = evaluate(toy_aligner(data), data, "gzsl", 0, policy="val", selection_aligner=toy_aligner(view),
                        selection_data=view, max_epochs=3, seed=0)
    assert explicit["classifier_epochs"] == result["classifier_epochs"] and explicit["H"] == result["H"]
    with pytest.raises(ConfigError, match="selection_aligner"):
        evaluate(toy_aligner(data), data, "gzsl", 0, policy="val")


def test_evaluate_test_policy_is_explicit_and_recorded():
    data = toy_data()
    result = evaluate(toy_aligner(data), data, "gzsl", 0, policy="test", max_epochs=3, seed=0)
    assert result["policy"] == "test" and result["selected_on"] == "test" and 1 <= result["classifier_epochs"] <= 3


def test_evaluate_rejects_unknown_setting_and_policy():
    data = toy_data()
    with pytest.raises(ConfigError, match="setting"):
        evaluate(toy_aligner(data), data, "fsl", policy="manual", epochs=1)
    with pytest.raises(ConfigError, match="policy"):
        evaluate(toy_aligner(data), data, "gzsl", policy="best", epochs=1)


# -- scores on a hand-computed confusion ---------------------------------------------------------


class OneHotAligner:
    """Encoders are the identity with a tiny posterior variance, so every latent is its input row."""

    def __init__(self):
        self.modalities = {"img": ToyModality("img", "features", "sample"),
                           "att": ToyModality("att", "attributes", "class")}
        self.device = torch.device("cpu")

    def encode(self, name, rows):
        mu = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        return mu, torch.full_like(mu, -6.0)

    def sample_latents(self, mu, logvar, generator=None):
        return mu + torch.exp(logvar) * torch.randn((mu.shape[0], 1), generator=generator, dtype=mu.dtype)


def hand_data(test_unseen_at):
    """6 classes: 0-3 seen, 4-5 unseen. Class c's latent is 10 * e_c, so the trained classifier
    predicts k for an image placed at ``k`` (10 * e_k) and at ``(k, j)`` (10 * e_k + 3 * e_j, which a
    classifier restricted to the classes other than k would call j). Test images are placed by hand
    (``class: [where, ...]``)."""
    test_seen_at = {0: [0, 0, 0, 4], 1: [1, 1], 2: [2, 0, 0, 0, 0], 3: [3, 3]}
    rows, labels, splits = [], [], {"trainval": [], "test_seen": [], "test_unseen": []}

    def add(split, label, at):
        splits[split].append(len(labels))
        labels.append(label)
        k, j = at if isinstance(at, tuple) else (at, at)
        rows.append(10.0 * np.eye(6)[k] + (3.0 * np.eye(6)[j] if j != k else 0.0))

    for c in range(4):
        for _ in range(6):
            add("trainval", c, c)
    for split, placed in (("test_seen", test_seen_at), ("test_unseen", test_unseen_at)):
        for c, where in placed.items():
            for at in where:
                add(split, c, at)
    return mmalign.AlignmentData(
        labels=np.array(labels), class_names=[f"c{i}" for i in range(6)],
        sample_features={"features": np.array(rows, np.float32)},
        class_features={"attributes": 10.0 * np.eye(6, dtype=np.float32)},
        splits={k: np.array(v) for k, v in splits.items()}, name="hand",
    )


@pytest.mark.parametrize("reference", [False, True])
def test_evaluate_gzsl_scores_a_hand_computed_confusion(reference):
    # unseen class 5 has one image placed on seen class 1 (leaning to 5): predicted 1 over all classes, a miss
    data = hand_data({4: [4, 4, 5], 5: [5, 4, 4, 4, (1, 5)]})
    result = evaluate(OneHotAligner(), data, "gzsl", 0, policy="manual", epochs=30, seed=0, reference=reference)
    # per class: seen 3/4, 2/2, 1/5, 2/2; unseen 2/3, 1/5 (not the pooled 8/13 and 3/8)
    s = (3 / 4 + 1 + 1 / 5 + 1) / 4
    u = (2 / 3 + 1 / 5) / 2
    h = 2 * s * u / (s + u)
    assert (result["S"], result["U"], result["H"]) == pytest.approx((100 * s, 100 * u, 100 * h), rel=1e-5)
    assert result["num_classes"] == 6 and result["train_latents"] == 4 * 200 + 2 * 400


@pytest.mark.parametrize("reference", [False, True])
def test_evaluate_zsl_top1_scores_a_hand_computed_confusion(reference):
    data = hand_data({4: [4, 4, 5], 5: [5, 4, 4, 4]})
    result = evaluate(OneHotAligner(), data, "zsl", 0, policy="manual", epochs=60, seed=0, reference=reference)
    assert result["top1"] == pytest.approx(100 * (2 / 3 + 1 / 4) / 2, rel=1e-5)
    assert result["num_classes"] == 2 and result["train_latents"] == 2 * 200


# -- with the real Aligner -----------------------------------------------------------------------


def test_evaluate_with_a_real_tiny_aligner_end_to_end():
    data = toy_data(per_class=30, feat_dim=12)
    aligner = mmalign.Aligner(
        [{"kind": "image_features", "name": "img", "hidden": (16, 16)},
         {"kind": "attributes", "name": "att", "hidden": (16, 16)}],
        {"training": {"epochs": 3, "batch_size": 16}, "device": "cpu", "latent_size": 8},
    )
    aligner.fit(data, seed=0, progress=False)
    gzsl = evaluate(aligner, data, "gzsl", 0, policy="manual", epochs=2, seed=0)
    again = evaluate(aligner, data, "gzsl", 0, policy="manual", epochs=2, seed=0, reference=True)
    assert (gzsl["S"], gzsl["U"], gzsl["H"]) == (again["S"], again["U"], again["H"])
    assert gzsl["reparameterization"] == "cada2019" and gzsl["num_classes"] == data.num_classes
    fsl = evaluate(aligner, data, "zsl", 1, policy="manual", epochs=2, seed=0)
    assert fsl["top1"] == evaluate(aligner, data, "zsl", 1, policy="manual", epochs=2, seed=0, reference=True)["top1"]
    assert fsl["num_classes"] == 4 and fsl["train_latents"] == 4 * (200 + 200)
