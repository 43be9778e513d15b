"""The CUB text bundle shipped in ``mmalign_registry/data/cub_text`` (no download needed).

Holds, for the 200 CUB-200-2011 classes in xlsa17 order (``allclasses_names``):

* ``cub_text.safetensors``: ``attributes`` (200, 312) and ``sentence_embeddings`` (200, 1024)
  float32 from xlsa17 ``att_splits.mat``/``sent_splits.mat``; ``seen_classes`` (150) and
  ``unseen_classes`` (50), the proposed split (trainval/test classes), 0-based.
* ``wikipedia_sentences.json``: each class's Wikipedia article split into sentences (CC BY-SA 3.0),
  with ZEST's ``tf_for_summarization`` label per sentence (``visual_label``).
* ``minilm_embeddings.safetensors``: all-MiniLM-L6-v2 vectors (mean pooling, L2-normalised):
  per-class means over all sentences (``class_all``) and over the visual sentences
  (``class_visual``) in float32, and every visual sentence (``sentences_visual``) in float16 with
  its flat sentence index (``visual_index``). Recomputable with `encode_wikipedia`.
* ``attribute_w2v.safetensors``: ``attribute_w2v`` (312, 300), the word2vec vector of each
  attribute phrase (DAZLE, MIT); `CubText.w2v_class_vectors` weights them by each class's
  attributes (the ``w2v`` modality).

"Visual" sentences are those matching `VISUAL_PATTERN` (colour, marking, body-part and size
words), a fixed a-priori filter, not tuned on the test classes; a class without any such sentence
keeps all of its sentences.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

BUNDLE = "cub_text"
CORE_FILE = "cub_text.safetensors"
SENTENCES_FILE = "wikipedia_sentences.json"
EMBEDDINGS_FILE = "minilm_embeddings.safetensors"
W2V_FILE = "attribute_w2v.safetensors"
CORE_TENSORS = {"attributes": (200, 312), "sentence_embeddings": (200, 1024), "seen_classes": (150,), "unseen_classes": (50,)}

_COLOURS = (
    r"black|white|gr[ae]y|brown|red|orange|yellow|green|blue|purple|pink|buff|olive|rufous|chestnut|"
    r"rusty|cinnamon|tawny|cream|golden|iridescent|glossy|dark|pale|bright|dull"
)
_MARKINGS = r"streak\w*|spot\w*|strip\w*|bars?|barred|patch\w*|band\w*|crest\w*|mottled|speckled"
_PARTS = (
    r"plumage|feathers?|bill|beak|wings?|tail|head|crown|nape|throat|breast|belly|back|rump|eyes?|"
    r"eyering|legs?|feet|foot|neck|cheeks?|chin|mantle|underparts?|upperparts?|flanks?|forehead|"
    r"collar|mask|eyebrow|supercilium|cap|hood|bib|lores?"
)
_SIZE = r"length|long|short|large|small|medium|cm|inch\w*|wingspan|size|plump|slender|stout"
#: A sentence is "visual" when it contains one of these words (case-insensitive, whole words).
VISUAL_PATTERN = re.compile(rf"\b({_COLOURS}|{_MARKINGS}|{_PARTS}|{_SIZE})\b", re.IGNORECASE)


def bundle_dir() -> Path:
    """Directory of the shipped bundle (inside the installed ``mmalign_registry`` package)."""
    return Path(str(resources.files("mmalign_registry") / "data" / BUNDLE))


@dataclass
class CubText:
    """The CUB text bundle in memory (class order: xlsa17 ``allclasses_names``)."""

    class_names: list[str]
    attributes: np.ndarray
    sentence_embeddings: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    sentences: list[list[str]]
    visual_labels: list[list[float | None]]
    minilm: dict[str, np.ndarray]
    minilm_meta: dict[str, str]
    path: Path
    attribute_w2v: np.ndarray | None = None

    def w2v_class_vectors(self) -> np.ndarray:
        """``(200, 300)``: each class's mean of the attribute-phrase word2vec vectors, weighted by
        its attribute values (``attributes @ attribute_w2v / attributes.sum(1)``)."""
        if self.attribute_w2v is None:
            raise DataError(f"{self.path / W2V_FILE}: not loaded; reinstall mmalign")
        att = self.attributes.astype(np.float64)
        return (att @ self.attribute_w2v.astype(np.float64) / att.sum(1, keepdims=True)).astype(np.float32)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def flat_sentences(self) -> tuple[list[str], np.ndarray]:
        """All sentences in class order, and the class of each."""
        texts = [t for group in self.sentences for t in group]
        labels = np.repeat(np.arange(self.num_classes), [len(g) for g in self.sentences])
        return texts, labels

    def visual_mask(self) -> np.ndarray:
        """Bool mask over `flat_sentences`: sentences matching `VISUAL_PATTERN`; a class
        with no such sentence keeps all of its sentences (so every class has some)."""
        texts, labels = self.flat_sentences()
        mask = np.array([bool(VISUAL_PATTERN.search(t)) for t in texts])
        empty = np.bincount(labels[mask], minlength=self.num_classes) == 0
        return mask | empty[labels]


def load_cub_text(path: str | Path | None = None) -> CubText:
    """Read and check the bundle at ``path`` (default: `bundle_dir`)."""
    from safetensors import safe_open

    root = Path(path) if path is not None else bundle_dir()
    core = _read_tensors(root / CORE_FILE, safe_open)
    for name, shape in CORE_TENSORS.items():
        if name not in core or core[name].shape != shape:
            got = core[name].shape if name in core else "missing"
            raise DataError(f"{root / CORE_FILE}: tensor {name!r} should have shape {shape}, got {got}")
    seen, unseen = core["seen_classes"].astype(np.int64), core["unseen_classes"].astype(np.int64)
    if np.intersect1d(seen, unseen).size or np.union1d(seen, unseen).size != 200:
        raise DataError(f"{root / CORE_FILE}: seen and unseen classes must partition 0..199")
    try:
        doc = json.loads((root / SENTENCES_FILE).read_text(encoding="utf-8"))
        classes = doc["classes"]
        names = [c["name"] for c in classes]
        sentences = [list(c["sentences"]) for c in classes]
        visual = [list(c["visual_label"]) for c in classes]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{root / SENTENCES_FILE}: unreadable or malformed ({exc}); reinstall mmalign") from exc
    if len(names) != 200 or any(len(s) != len(v) or not s for s, v in zip(sentences, visual)):
        raise DataError(f"{root / SENTENCES_FILE}: expected 200 classes, each with sentences and labels")
    minilm, meta = _read_tensors(root / EMBEDDINGS_FILE, safe_open, with_meta=True)
    w2v = _read_tensors(root / W2V_FILE, safe_open).get("attribute_w2v")
    if w2v is None or w2v.shape != (core["attributes"].shape[1], 300):
        raise DataError(f"{root / W2V_FILE}: tensor 'attribute_w2v' should have shape (312, 300), "
                        f"got {'missing' if w2v is None else w2v.shape}; reinstall mmalign")
    data = CubText(names, core["attributes"].astype(np.float32), core["sentence_embeddings"].astype(np.float32),
                   seen, unseen, sentences, visual, minilm, meta, root, w2v.astype(np.float32))
    _check_minilm(data)
    return data


def _read_tensors(file: Path, safe_open, with_meta: bool = False):
    try:
        with safe_open(str(file), framework="numpy") as handle:
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
            meta = handle.metadata() or {}
    except Exception as exc:
        raise DataError(f"{file}: cannot read the shipped CUB text data ({exc}); reinstall mmalign") from exc
    return (tensors, meta) if with_meta else tensors


_REBUILD = "reinstall mmalign, or rebuild the bundle with benchmarks/cub_text_build_data.py"


def _check_minilm(data: CubText) -> None:
    file = data.path / EMBEDDINGS_FILE
    mask = data.visual_mask()
    expected = {
        "class_all": ((200, 384), np.float32),
        "class_visual": ((200, 384), np.float32),
        "sentences_visual": ((int(mask.sum()), 384), np.float16),
        "visual_index": ((int(mask.sum()),), np.int32),
    }
    for name, (shape, dtype) in expected.items():
        got = data.minilm.get(name)
        if got is None or got.shape != shape or got.dtype != dtype:
            desc = "missing" if got is None else f"{got.dtype} {got.shape}"
            raise DataError(
                f"{file}: tensor {name!r} should be {np.dtype(dtype).name} {shape} (the visual-sentence filter of "
                f"{SENTENCES_FILE} selects {int(mask.sum())} sentences), got {desc}; {_REBUILD}"
            )
    if not np.array_equal(data.minilm["visual_index"], np.flatnonzero(mask)):
        raise DataError(f"{file}: 'visual_index' does not match the visual-sentence filter of {SENTENCES_FILE}; {_REBUILD}")


def class_means(vectors: np.ndarray, labels: np.ndarray, num_classes: int, normalize: bool = True) -> np.ndarray:
    """Mean vector per class (L2-normalised when ``normalize``); every class needs a row."""
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise DataError(f"class {int(np.argmin(counts))} has no sentence to average")
    sums = np.zeros((num_classes, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, vectors.astype(np.float64))
    means = sums / counts[:, None]
    if normalize:
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return means.astype(np.float32)


def encode_wikipedia(data: CubText, encoder: Any = None) -> dict[str, np.ndarray]:
    """Recompute the shipped MiniLM tensors with a `TextEncoder` (default:
    the bundled MiniLM, mean pooling, L2-normalised; the embedding cache makes reruns free)."""
    if encoder is None:
        from ..text import TextEncoder

        encoder = TextEncoder()
    texts, labels = data.flat_sentences()
    vectors = encoder.encode(texts)
    mask = data.visual_mask()
    return {
        "class_all": class_means(vectors, labels, data.num_classes),
        "class_visual": class_means(vectors[mask], labels[mask], data.num_classes),
        "sentences_visual": vectors[mask],
        "visual_index": np.flatnonzero(mask).astype(np.int32),
    }
