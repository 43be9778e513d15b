"""Protocol metrics (per-class accuracy, H) and the seeded few-shot split."""

import numpy as np
import pytest
import torch

from mmalign import AlignmentData
from mmalign.errors import ConfigError
from mmalign.protocols import fewshot_split, harmonic_mean, per_class_accuracy


def test_per_class_accuracy_differs_from_overall_on_imbalanced_classes():
    targets = torch.tensor([0] * 8 + [1] * 2)
    predictions = torch.tensor([0] * 8 + [0] * 2)        # class 0 all right, class 1 all wrong
    overall = (predictions == targets).float().mean()
    assert overall.item() == pytest.approx(0.8)
    assert per_class_accuracy(predictions, targets, [0, 1]).item() == pytest.approx(0.5)


def test_per_class_accuracy_averages_only_the_given_classes():
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 0, 0, 2])
    assert per_class_accuracy(predictions, targets, [0]).item() == pytest.approx(0.5)
    assert per_class_accuracy(predictions, targets, [1, 2]).item() == pytest.approx((1 + 1 / 3) / 2)
    assert per_class_accuracy(predictions, targets, [0, 1, 2]).item() == pytest.approx((0.5 + 1 + 1 / 3) / 3)


def test_per_class_accuracy_skips_classes_without_samples_and_accepts_numpy():
    targets = np.array([3, 3, 5])
    predictions = np.array([3, 0, 5])
    got = per_class_accuracy(predictions, targets, np.array([3, 4, 5]), num_classes=6)
    assert got.item() == pytest.approx((0.5 + 1.0) / 2)
    assert per_class_accuracy(predictions, targets, np.array([4]), num_classes=6).item() == 0.0


def test_harmonic_mean_matches_closed_form_and_is_zero_without_accuracy():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.0, 0.7) == 0.0
    t = harmonic_mean(torch.tensor(0.5), torch.tensor(0.25))
    assert isinstance(t, torch.Tensor) and t.item() == pytest.approx(1 / 3)
    assert harmonic_mean(torch.tensor(0.0), torch.tensor(0.0)).item() == 0.0


def unseen_data(per_class=(6, 9, 4), start=3):
    labels = np.concatenate([np.full(n, start + c) for c, n in enumerate(per_class)])
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)                   # interleave the classes
    labels = labels[order]
    n = labels.size
    return AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(start + len(per_class))],
        sample_features={"features": rng.random((n, 3)).astype(np.float32)},
        splits={"test_unseen": np.arange(n)[::-1].copy()}, name="fs",
    )


def test_fewshot_split_same_seed_gives_same_split():
    data = unseen_data()
    a, b = fewshot_split(data, 2, seed=5), fewshot_split(data, 2, seed=5)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)


def test_fewshot_split_different_seeds_give_different_splits():
    data = unseen_data(per_class=(30, 30, 30))
    splits = {tuple(fewshot_split(data, 3, seed=s).train) for s in range(5)}
    assert len(splits) == 5


def test_fewshot_split_moves_k_per_class_and_never_leaves_them_in_test():
    data = unseen_data()
    split = fewshot_split(data, 3, seed=1)
    original = data.splits["test_unseen"]
    assert np.intersect1d(split.train, split.test).size == 0
    assert np.array_equal(np.sort(np.concatenate([split.train, split.test])), np.sort(original))
    train_labels = data.labels[split.train]
    assert list(train_labels) == [3] * 3 + [4] * 3 + [5] * 3          # grouped by ascending class
    assert [int((data.labels[split.test] == c).sum()) for c in (3, 4, 5)] == [3, 6, 1]
    kept = np.isin(original, split.test)
    assert np.array_equal(split.test, original[kept])                  # rest stays in original order


def test_fewshot_split_zero_shots_moves_nothing():
    data = unseen_data()
    split = fewshot_split(data, 0, seed=0)
    assert split.train.size == 0 and np.array_equal(split.test, data.splits["test_unseen"])


def test_fewshot_split_too_many_shots_names_the_class_and_counts():
    data = unseen_data(per_class=(6, 9, 4))
    with pytest.raises(ConfigError, match=r"class 5 \('c5'\) has only 4 images.*need at least 5"):
        fewshot_split(data, 4, seed=0)
    with pytest.raises(ConfigError, match="shots must be >= 0"):
        fewshot_split(data, -1)
