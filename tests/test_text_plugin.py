"""The built-in ``text`` plugin: per-sample and per-class text modalities in the Aligner."""

from __future__ import annotations

import numpy as np
import pytest

import mmalign
from mmalign.errors import ConfigError, DataError
from mmalign_plugins import text as text_plugin
from mmalign_plugins.class_embeddings import ClassAttributes
from mmalign_plugins.text import ClassText, TextModality

from test_text_encoder import WORDS, make_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny_bert_plugin"))


def sentence_data(rng, classes: int = 6, per_class: int = 8) -> mmalign.AlignmentData:
    labels = np.repeat(np.arange(classes), per_class)
    texts = [" ".join(rng.choice(WORDS, size=5)) + f" {WORDS[c]}" for c in labels]
    att = rng.random((classes, 7)).astype(np.float32)
    seen = np.flatnonzero(labels < classes - 2)
    return mmalign.AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(classes)], class_features={"attributes": att},
        splits={"trainval": seen[1::2], "test_seen": seen[::2], "test_unseen": np.flatnonzero(labels >= classes - 2)},
        sample_texts={"text": texts}, name="toy-text",
    )


def options(model, tmp_path, **kw):
    return {"model": str(model), "cache_dir": str(tmp_path / "cache"), "progress": False, "device": "cpu", **kw}


def test_text_plugin_registers_both_modalities():
    seen = []
    text_plugin.register_modalities(register=seen.append)
    assert [(m.kind, m.granularity) for m in seen] == [("text", "sample"), ("class_text", "class")]


def test_text_plugin_options_are_validated():
    with pytest.raises(ConfigError, match="pooling"):
        TextModality(pooling="max")
    with pytest.raises(ConfigError, match="unknown key"):
        TextModality(modle="x")


def test_text_plugin_prepare_encodes_texts_per_sample(tiny_model, tmp_path):
    data = sentence_data(np.random.default_rng(0))
    modality = TextModality(**options(tiny_model, tmp_path))
    rows = modality.prepare(data)
    assert rows.shape == (data.num_samples, 32) and rows.dtype == np.float32
    np.testing.assert_allclose(modality.embed(data.sample_texts["text"][:3]), rows[:3], atol=1e-6)
    assert modality.describe()["text_model"]["identity"] == modality.encoder.resolved.identity


def test_text_plugin_class_text_accepts_strings_or_sentence_lists(tiny_model, tmp_path):
    modality = ClassText(**options(tiny_model, tmp_path))
    descriptions = ["red bird", ["small red bird", "sings in the forest"], "blue wing"]
    vectors = modality.embed(descriptions)
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(vectors[1], modality.encoder.encode_groups([descriptions[1]])[0], atol=1e-6)


def test_text_plugin_uses_precomputed_embeddings_and_checks_lengths(tiny_model, tmp_path):
    data = sentence_data(np.random.default_rng(1))
    data.sample_features["text"] = np.ones((data.num_samples, 5), dtype=np.float32)
    assert TextModality(**options(tiny_model, tmp_path)).prepare(data).shape == (data.num_samples, 5)
    short = sentence_data(np.random.default_rng(1))
    short.sample_texts["text"] = short.sample_texts["text"][:-1]
    with pytest.raises(DataError, match="needs 48 texts"):
        TextModality(**options(tiny_model, tmp_path)).prepare(short)
    with pytest.raises(DataError, match="neither texts nor an embedding array"):
        TextModality(source="nothing", **options(tiny_model, tmp_path)).prepare(short)


def test_text_plugin_trains_with_the_aligner_and_reloads(tiny_model, tmp_path):
    data = sentence_data(np.random.default_rng(2))
    mods = [TextModality(hidden=(16, 16), **options(tiny_model, tmp_path)), ClassAttributes(hidden=(16, 16))]
    aligner = mmalign.Aligner(mods, {"latent_size": 4, "training": {"epochs": 2, "batch_size": 8}, "device": "cpu"})
    aligner.fit(data, progress=False)
    rows = mods[0].prepare(data)
    mu, _ = aligner.encode("text", rows)
    assert mu.shape == (data.num_samples, 4) and bool(mu.isfinite().all())
    aligner.save(tmp_path / "ckpt")
    again = mmalign.Aligner.load(tmp_path / "ckpt", modalities=mods)
    np.testing.assert_allclose(again.encode("text", rows)[0].numpy(), mu.numpy(), atol=1e-6)


def test_text_plugin_reads_class_texts_and_the_older_meta_texts(tiny_model, tmp_path):
    data = sentence_data(np.random.default_rng(2))
    descriptions = [f"{WORDS[c]} bird" if c % 2 else [f"{WORDS[c]} bird", "small"] for c in range(data.num_classes)]
    data.class_texts["wiki"] = descriptions
    data.validate()
    modality = ClassText(source="wiki", **options(tiny_model, tmp_path))
    np.testing.assert_allclose(modality.prepare(data), modality.embed(descriptions), atol=1e-6)
    legacy = sentence_data(np.random.default_rng(2))
    legacy.meta["texts"] = {"text": legacy.sample_texts.pop("text")}
    per_sample = TextModality(**options(tiny_model, tmp_path))
    np.testing.assert_allclose(per_sample.prepare(legacy), per_sample.prepare(sentence_data(np.random.default_rng(2))),
                               atol=1e-6)
