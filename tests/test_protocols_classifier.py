"""The latent classifier: the fast path against the plain reference loop, and the batch schedules."""

import math

import pytest
import torch

from mmalign.errors import ConfigError
from mmalign.protocols import ClassifierHparams, predict, train_classifier, train_resident, train_reference
from mmalign.protocols.classifier import _IndexStream, steps_per_epoch


def blobs(n=1000, classes=12, dim=16, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


@pytest.mark.parametrize("adam", ["fused", "single_tensor"])
@pytest.mark.parametrize("schedule,n", [("epoch", 1000), ("epoch", 1003), ("stream", 1000), ("stream", 1024), ("stream", 1009)])
def test_train_fast_equals_reference_bit_for_bit(schedule, n, adam):
    x, y = blobs(n)
    runs = []
    for impl in (train_reference, train_resident):
        per_epoch = []
        w, b = impl(x, y, 12, 4, generator=torch.Generator().manual_seed(11), schedule=schedule,
                    hparams=ClassifierHparams(adam=adam),
                    on_epoch=lambda e, w, b: per_epoch.append((e, w.clone(), b.clone())))
        runs.append((w, b, per_epoch))
    (wr, br, hr), (wf, bf, hf) = runs
    assert torch.equal(wr, wf) and torch.equal(br, bf)
    assert [e for e, _, _ in hr] == [e for e, _, _ in hf] == [1, 2, 3, 4]
    assert all(torch.equal(a[1], c[1]) and torch.equal(a[2], c[2]) for a, c in zip(hr, hf))
    assert torch.equal(predict(wr, br, x), predict(wf, bf, x))


def test_train_fast_equals_reference_with_two_threads_and_odd_shapes():
    torch.set_num_threads(2)
    x, y = blobs(700, classes=7, dim=5)
    a = train_reference(x, y, 7, 2, generator=torch.Generator().manual_seed(0), schedule="stream")
    b = train_resident(x, y, 7, 2, generator=torch.Generator().manual_seed(0), schedule="stream")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_adam_kernel_choice_is_validated():
    from mmalign.protocols.classifier import adam_kernel

    assert adam_kernel(ClassifierHparams(adam="single_tensor"), torch.device("cpu")) == "single_tensor"
    assert adam_kernel(ClassifierHparams(), torch.device("meta")) == "single_tensor"
    with pytest.raises(ConfigError):
        adam_kernel(ClassifierHparams(adam="lamb"), torch.device("cpu"))


def test_train_classifier_same_seed_same_weights_different_seed_different():
    x, y = blobs()
    a = train_classifier(x, y, 12, 2, generator=torch.Generator().manual_seed(1))
    b = train_classifier(x, y, 12, 2, generator=torch.Generator().manual_seed(1))
    c = train_classifier(x, y, 12, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_train_fast_learns_separable_classes_and_restores_threads():
    x, y = blobs(2000, spread=0.3)
    torch.set_num_threads(2)
    threads = torch.get_num_threads()
    w, b = train_resident(x, y, 12, 5, generator=torch.Generator().manual_seed(0))
    assert torch.get_num_threads() == threads
    assert (predict(w, b, x) == y).float().mean() > 0.95


def test_train_fast_init_is_xavier_gain_half_with_zero_bias():
    x, y = blobs(64)
    w, b = train_resident(x, y, 12, 0, generator=torch.Generator().manual_seed(0))
    bound = 0.5 * math.sqrt(6 / (16 + 12))
    assert torch.all(b == 0) and w.abs().max() <= bound and w.abs().max() > 0.5 * bound


def original_next_batch_stream(n, batch_size, generator, batches):
    """The reference code's CLASSIFIER.next_batch, transcribed, on the indices 0..n-1."""
    state = {"train_X": torch.arange(n), "index_in_epoch": 0, "epochs_completed": 0}

    def next_batch():
        start = state["index_in_epoch"]
        if state["epochs_completed"] == 0 and start == 0:
            perm = torch.randperm(n, generator=generator)
            state["train_X"] = state["train_X"][perm]
        if start + batch_size > n:
            state["epochs_completed"] += 1
            rest_num_examples = n - start
            if rest_num_examples > 0:
                x_rest_part = state["train_X"][start:n]
            perm = torch.randperm(n, generator=generator)
            state["train_X"] = state["train_X"][perm]
            start = 0
            state["index_in_epoch"] = batch_size - rest_num_examples
            x_new_part = state["train_X"][start:state["index_in_epoch"]]
            return torch.cat((x_rest_part, x_new_part)) if rest_num_examples > 0 else x_new_part
        state["index_in_epoch"] += batch_size
        return state["train_X"][start:state["index_in_epoch"]]

    return torch.cat([next_batch() for _ in range(batches)])


@pytest.mark.parametrize("n", [100, 96, 33])
def test_stream_schedule_reproduces_the_reference_wraparound(n):
    batches = 3 * steps_per_epoch(n, 32, "stream") + 1
    expected = original_next_batch_stream(n, 32, torch.Generator().manual_seed(4), batches)
    stream = _IndexStream(n, torch.Generator().manual_seed(4))
    got = torch.cat([stream.take(32) for _ in range(batches)])
    assert torch.equal(got, expected)


def test_epoch_schedule_drops_the_last_partial_batch():
    assert steps_per_epoch(1003, 32, "epoch") == 31
    assert steps_per_epoch(1003, 32, "stream") == 32
    seen = []
    x, y = blobs(100)
    hp = ClassifierHparams(batch_size=32)
    train_reference(x, y, 12, 1, generator=torch.Generator().manual_seed(0), hparams=hp,
                    on_epoch=lambda e, w, b: seen.append(e))
    assert seen == [1]


def test_train_classifier_rejects_fewer_latents_than_a_batch():
    x, y = blobs(10)
    with pytest.raises(ConfigError, match="at least one batch"):
        train_classifier(x, y, 12, 1, generator=torch.Generator())
    with pytest.raises(ConfigError, match="schedule"):
        train_classifier(*blobs(100), 12, 1, generator=torch.Generator(), schedule="other")
