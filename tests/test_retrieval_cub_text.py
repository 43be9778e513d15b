"""The shipped CUB text bundle and the cub-text benchmark (tiny run, no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmalign.retrieval.cub_data import VISUAL_PATTERN, bundle_dir, class_means, load_cub_text
from mmalign.retrieval.cub_text import alignment_data, class_arrays, run_cub_text, scaled_warmup, wiki_vectors
from mmalign.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def bundle():
    return load_cub_text()


def test_cub_text_bundle_shapes_split_and_order(bundle):
    assert bundle.attributes.shape == (200, 312) and bundle.sentence_embeddings.shape == (200, 1024)
    assert bundle.seen.size == 150 and bundle.unseen.size == 50
    assert np.array_equal(np.union1d(bundle.seen, bundle.unseen), np.arange(200))
    assert bundle.class_names[0] == "002.Laysan_Albatross"  # xlsa17 order, not CUB's 001..200
    np.testing.assert_allclose(np.linalg.norm(bundle.attributes, axis=1), 1.0, atol=1e-5)
    texts, labels = bundle.flat_sentences()
    assert len(texts) == 8255 and labels.shape == (8255,)
    assert all(len(s) >= 10 for s in bundle.sentences)


def test_cub_text_bundle_is_small_and_attributed():
    root = bundle_dir()
    total = sum(p.stat().st_size for p in root.iterdir())
    assert total < 6e6
    sources = (root / "SOURCES.md").read_text()
    assert "CC BY-SA 3.0" in sources and "Reed" in sources and "xlsa17" in sources


def test_cub_text_visual_filter_and_shipped_vectors_agree(bundle):
    mask = bundle.visual_mask()
    texts, labels = bundle.flat_sentences()
    assert np.array_equal(bundle.minilm["visual_index"], np.flatnonzero(mask))
    assert set(np.unique(labels[mask])) == set(range(200))  # every class keeps some sentences
    assert VISUAL_PATTERN.search("it has a bright yellow throat") and not VISUAL_PATTERN.search("it nests in canada")
    sent = bundle.minilm["sentences_visual"].astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(sent, axis=1), 1.0, atol=2e-3)
    # the shipped class means are the means of the shipped sentence vectors (float16 rounding aside)
    np.testing.assert_allclose(class_means(sent, labels[mask], 200), bundle.minilm["class_visual"], atol=2e-3)


def test_cub_text_bundle_rejects_a_tampered_file(tmp_path, bundle):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle.path, copy)
    # which of class 0's sentences are visual: the shipped record (indices into the flat sentence list)
    recorded = bundle.minilm["visual_index"]
    in_class0 = recorded[recorded < len(bundle.sentences[0])].tolist()
    visual = in_class0[0]
    plain = next(i for i in range(len(bundle.sentences[0])) if i not in in_class0)
    doc = json.loads((copy / "wikipedia_sentences.json").read_text())
    doc["classes"][0]["sentences"][visual] = "plain words only"  # one visual sentence fewer than recorded
    (copy / "wikipedia_sentences.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=f"visual-sentence filter.*selects {len(recorded) - 1} sentences"):
        load_cub_text(copy)
    doc["classes"][0]["sentences"] = list(bundle.sentences[0])
    doc["classes"][0]["sentences"][visual] = "plain words only"  # same count, other sentences
    doc["classes"][0]["sentences"][plain] = "a red bill"
    (copy / "wikipedia_sentences.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="visual_index"):
        load_cub_text(copy)
    (copy / "cub_text.safetensors").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read"):
        load_cub_text(copy)


@pytest.mark.parametrize("mode", ["sentences", "class"])
def test_cub_text_alignment_data_trains_on_seen_classes_only(bundle, mode):
    vectors, info = wiki_vectors(bundle, "never")
    assert info["source"] == "shipped"
    data = alignment_data(bundle, vectors, mode, "visual", class_repeats=3).validate()
    assert np.array_equal(np.unique(data.labels[data.split("trainval")]), bundle.seen)
    assert np.array_equal(np.unique(data.labels[data.split("test_unseen")]), bundle.unseen)
    arrays = class_arrays(bundle, vectors, "visual")
    assert {k: v.shape for k, v in arrays.items()} == {"att": (200, 312), "sent": (200, 1024), "wiki": (200, 384),
                                                        "w2v": (200, 300)}


def test_cub_text_w2v_modality_is_the_attribute_weighted_phrase_vectors(bundle):
    w2v = bundle.w2v_class_vectors()
    assert bundle.attribute_w2v.shape == (312, 300) and w2v.shape == (200, 300) and np.isfinite(w2v).all()
    c = 7
    weights = bundle.attributes[c].astype(np.float64)
    np.testing.assert_allclose(w2v[c], (weights[:, None] * bundle.attribute_w2v).sum(0) / weights.sum(), rtol=1e-4, atol=1e-5)
    assert "DAZLE" in (bundle_dir() / "SOURCES.md").read_text() and "MIT" in (bundle_dir() / "SOURCES.md").read_text()


def test_cub_text_scaled_warmup_is_the_recipe_at_100_epochs():
    from mmalign.config import TrainConfig

    assert scaled_warmup(100) == {k: v.model_dump(exclude_none=True) for k, v in TrainConfig().warmup.items()}
    assert scaled_warmup(50)["cross"] == {"start": 10.5, "end": 37.5, "factor": 2.37}


def test_cub_text_benchmark_runs_offline_and_writes_its_table(tmp_path):
    from mmalign.records.files import load_records

    kwargs = dict(seeds=[0], epochs=1, modalities=("att", "wiki"), out=tmp_path, baselines=("ridge",),
                  text_mode="class", class_repeats=1, hidden=(32, 32), recompute="never", progress=False,
                  log=lambda msg: None)
    records = run_cub_text(**kwargs)
    assert {(r.method, r.query, r.gallery, r.setting) for r in records} == {
        (m, a, b, s) for m in ("ridge", "aligner") for a, b in (("att", "wiki"), ("wiki", "att")) for s in ("zsl", "gzsl")
    }
    assert all(0.0 <= r.metrics[k] <= 100.0 for r in records for k in ("top1", "top5", "mrr"))
    assert any(r.metrics["top1"] > 1.0 for r in records)  # percent, not fractions
    saved = load_records(tmp_path / "results.json")
    assert saved == records and all(r.command == "cub-text" and r.versions.mmalign for r in saved)
    aligner = [r for r in saved if r.method == "aligner"]
    assert all(r.details["text_vectors"]["source"] == "shipped" and r.seconds["vae"] > 0 for r in aligner)
    assert all(len(r.history) == 1 and "loss" in r.history[0].terms for r in aligner)
    table = (tmp_path / "table.md").read_text()
    assert "| att → wiki | ridge |" in table and "aligner (M=2, cada_vae)" in table  # cub-text's default recipe
    assert all(r.details["recipe"] == r.recipe == "cada_vae" and r.overrides == {} for r in aligner)
    with pytest.raises(ConfigError, match="--resume.*--force"):
        run_cub_text(**kwargs)
    resumed = run_cub_text(**kwargs, resume=True)
    assert resumed == records and load_records(tmp_path / "results.json") == records


def test_cub_text_benchmark_fits_only_the_alignments_asked_for(tmp_path):
    records = run_cub_text(seeds=[0], epochs=1, modalities=("att", "sent", "w2v"), alignments=[("att", "sent", "w2v")],
                           baselines=(), class_repeats=1, hidden=(16, 16), recompute="never", progress=False,
                           recipe="cada_vae", log=lambda msg: None)
    assert {tuple(r.modalities) for r in records} == {("att", "sent", "w2v")} and len(records) == 12
    assert all(r.overrides == {} and r.details["recipe"] == "cada_vae" for r in records)  # cada_vae keeps its keys
    with pytest.raises(ConfigError, match="alignments"):
        run_cub_text(modalities=("att", "sent"), alignments=[("att", "wiki")])


def test_cub_text_select_folds_are_the_baselines_folds():
    from mmalign.retrieval.baselines import select_by_cv
    from mmalign.retrieval.select import expand_grid, fold_parts

    seen = []

    def scorer(x_tr, y_tr, x_q, y_g, grid):
        seen.append(sorted(x_q[:, 0].astype(int).tolist()))
        return [np.eye(len(x_q))]

    x = np.arange(20, dtype=float)[:, None]
    select_by_cv(scorer, x, x, [{}], folds=5, seed=3)
    assert seen == [sorted(p.tolist()) for p in fold_parts(20, 5, 3)]
    assert expand_grid({"latent_size": [8, 16], "loss_options.contrastive.temperature": [0.1]}) == [
        {"latent_size": 8, "loss_options": {"contrastive": {"temperature": 0.1}}},
        {"latent_size": 16, "loss_options": {"contrastive": {"temperature": 0.1}}}]


def test_cub_text_benchmark_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="at least two"):
        run_cub_text(modalities=("att",))
    with pytest.raises(ConfigError, match="text_mode"):
        run_cub_text(text_mode="words")


def test_cub_text_cv_score_fits_on_seen_training_folds_and_scores_held_out_classes():
    from mmalign.retrieval.select import cv_score

    seen = np.arange(10, 30)
    fitted = []

    class Perfect:
        def fit(self, data, progress=True):
            data.validate()
            fitted.append(set(np.unique(data.labels[data.split("trainval")]).tolist()))

        def retrieve(self, a, queries, b, gallery, k=None):
            order = np.tile(np.arange(len(gallery)), (len(queries), 1))
            return order, np.where(order == np.arange(len(queries))[:, None], 1.0, 0.0)

    arrays = {"x": np.random.default_rng(0).random((40, 3)), "y": np.random.default_rng(1).random((40, 2))}
    result = cv_score(lambda c: Perfect(), {}, arrays, ["x", "y"], seen, [str(i) for i in range(40)], folds=4)
    assert result["mrr"] == 1.0 and len(result["per_fold"]) == 4
    assert all(f < set(seen.tolist()) and len(f) == 15 for f in fitted)  # never an unseen class, one fold held out
