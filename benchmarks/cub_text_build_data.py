"""Build ``registry/data/cub_text/`` (the CUB text bundle) from the real data in a shared folder.

Usage::

    python benchmarks/cub_text_build_data.py [--data /work/shared/data] [--out registry/data/cub_text]

Reads xlsa17 ``CUB/att_splits.mat`` + ``sent_splits.mat`` (attributes, Reed et al. sentence
embeddings, class names), ``trainvalclasses.txt``/``testclasses.txt`` (the proposed split) and
``text/CUB_wikipedia_sentences.json`` (ZEST's Wikipedia sentences), writes compact copies in class
order of ``allclasses_names``, and encodes the sentences with the bundled all-MiniLM-L6-v2 (needs
``mmalign[minilm]``; cached, so a rerun is fast). ``SOURCES.md`` in the output folder is
hand-written and not touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import scipy.io as sio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmalign.atomic import write_atomic, write_bytes_atomic  # noqa: E402
from mmalign.retrieval.cub_data import (  # noqa: E402
    CORE_FILE,
    EMBEDDINGS_FILE,
    SENTENCES_FILE,
    CubText,
    encode_wikipedia,
    load_cub_text,
)
from mmalign.text import TextEncoder  # noqa: E402


def _names(mat) -> list[str]:
    return [str(x[0][0]) for x in mat["allclasses_names"]]


def build(data_dir: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    cub = data_dir / "xlsa17" / "CUB"
    att, sent = sio.loadmat(cub / "att_splits.mat"), sio.loadmat(cub / "sent_splits.mat")
    names = _names(att)
    assert names == _names(sent), "att_splits and sent_splits disagree on the class order"
    seen_names = [l.strip() for l in open(cub / "trainvalclasses.txt") if l.strip()]
    unseen_names = [l.strip() for l in open(cub / "testclasses.txt") if l.strip()]
    index = {n: i for i, n in enumerate(names)}
    seen = np.array(sorted(index[n] for n in seen_names), dtype=np.int64)
    unseen = np.array(sorted(index[n] for n in unseen_names), dtype=np.int64)
    assert len(seen) == 150 and len(unseen) == 50 and not set(seen) & set(unseen)

    out.mkdir(parents=True, exist_ok=True)
    core = {
        "attributes": np.ascontiguousarray(att["att"].T, dtype=np.float32),
        "sentence_embeddings": np.ascontiguousarray(sent["att"].T, dtype=np.float32),
        "seen_classes": seen,
        "unseen_classes": unseen,
    }
    meta = {
        "class_order": "xlsa17 CUB allclasses_names",
        "attributes": "xlsa17 CUB/att_splits.mat 'att' (312 x 200, L2-normalised per class), transposed",
        "sentence_embeddings": "xlsa17 CUB/sent_splits.mat 'att' (Reed et al. 2016, 1024 x 200), transposed",
        "seen_classes": "trainvalclasses.txt (150), 0-based", "unseen_classes": "testclasses.txt (50), 0-based",
        "att_splits_sha256": _sha(cub / "att_splits.mat"), "sent_splits_sha256": _sha(cub / "sent_splits.mat"),
    }
    _save(save_file, core, out / CORE_FILE, meta)

    wiki = json.loads((data_dir / "text" / "CUB_wikipedia_sentences.json").read_text(encoding="utf-8"))
    by_name = {c["cub_class"]: c for c in wiki["classes"]}
    classes = [
        {
            "name": n,
            "cub_index0": by_name[n]["class_index0"],
            "sentences": [s["text"] for s in by_name[n]["sentences"]],
            "visual_label": [s["tf_for_summarization"] for s in by_name[n]["sentences"]],
        }
        for n in names
    ]
    doc = {
        "description": "English Wikipedia article of each CUB-200-2011 class, split into sentences, in xlsa17 "
        "class order. visual_label: ZEST's tf_for_summarization (1, 0.5, 0 or null).",
        "licence": "Wikipedia text, CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/); see SOURCES.md",
        "source": "tzuf/ZEST data/CUB2011/wikipedia_HUMAN (commit 658e673afccdb70fb6196f08e725f4de2a38bcac)",
        "classes": classes,
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    write_bytes_atomic(out / SENTENCES_FILE, text.encode("utf-8"))

    encoder = TextEncoder()
    bundle = CubText(names, core["attributes"], core["sentence_embeddings"], seen, unseen,
                     [c["sentences"] for c in classes], [c["visual_label"] for c in classes], {}, {}, out)
    tensors = encode_wikipedia(bundle, encoder)
    tensors["sentences_visual"] = tensors["sentences_visual"].astype(np.float16)
    emb_meta = {
        "model": encoder.resolved.name, "model_identity": encoder.resolved.identity,
        **{k: str(v) for k, v in encoder.settings().items()},
        "class_all": "mean of all sentence vectors per class, L2-normalised (float32)",
        "class_visual": "mean of the visual sentences' vectors per class, L2-normalised (float32)",
        "sentences_visual": "vector of every visual sentence (float16), rows follow visual_index",
        "visual_index": "flat index (class order, then sentence order) of each visual sentence",
    }
    _save(save_file, tensors, out / EMBEDDINGS_FILE, emb_meta)
    load_cub_text(out)  # check what was written
    for f in sorted(out.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e6:.2f} MB")


def _save(save_file, tensors, path: Path, meta: dict) -> None:
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    write_atomic(path, lambda tmp: save_file(arrays, tmp, metadata=meta))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MMALIGN_SHARED_DATA", "/work/shared/data")))
    parser.add_argument("--out", type=Path, default=ROOT / "registry" / "data" / "cub_text")
    args = parser.parse_args()
    build(args.data, args.out)


if __name__ == "__main__":
    main()
