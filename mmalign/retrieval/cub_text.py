"""``mmalign benchmark cub-text``: zero-shot cross-modal retrieval between three real modalities of
the 200 CUB classes, with no download.

Modalities (per class, from the shipped bundle, see `mmalign.retrieval.cub_data`):
``att`` (312-d attributes), ``sent`` (1024-d Reed et al. sentence embeddings) and ``wiki`` (the
Wikipedia article, 384-d all-MiniLM-L6-v2 through the ``text`` plugin). Models are fitted on the
150 seen classes only. For every ordered pair ``a -> b``, each unseen class's ``a`` vector is a
query; the answer is the same class's ``b`` vector among the 50 unseen classes (``zsl``) or among
all 200 classes (``gzsl``). Metrics: top-1, top-5, MRR (chance top-1 2% and 0.5%).

Methods: ``ridge`` and ``cca`` (hyperparameters by 5-fold CV over the seen classes), and the
Aligner (CADA-VAE losses) for every subset of at least two modalities, scored by cosine between
the latent means. With ``text_mode="class"`` (default) there is one pooled ``wiki`` vector per
class and the samples are repeats of the seen classes; with ``"sentences"`` the Aligner's samples
are the visual Wikipedia sentences of the seen classes (``wiki`` per sample, ``att``/``sent`` per
class). Retrieval always uses one vector per class and modality.
"""

from __future__ import annotations

import itertools
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import ConfigError
from ..recipes import Recipe, load_recipe
from ..records.build import aligner_provenance
from ..records.provenance import array_hash, device_name, versions
from ..records.files import check_rerun, load_records, write_record
from ..records.schema import ResultRecord
from .baselines import baseline_retrieval
from .cub_data import CubText, encode_wikipedia, load_cub_text
from .metrics import retrieval_metrics
from .report import render

#: Every modality the benchmark offers; ``w2v`` is the attribute phrases' word2vec vectors
#: weighted by each class's attributes (`w2v_class_vectors`).
MODALITIES = ("att", "sent", "wiki", "w2v")
#: The modalities aligned when none are named.
DEFAULT_MODALITIES = ("att", "sent", "wiki")
#: The recipe ``mmalign benchmark cub-text`` runs when none is named. The recipes measured in
#: benchmarks/CUB_TEXT.md (cub_text_contrastive, cub_text_mopoe) are within noise of it on the mean
#: MRR at several times its wall time, so the paper's losses stay the default.
CUB_TEXT_RECIPE = "cada_vae"
#: cub-text's settings with a recipe that has no ``[retrieval]`` table (e.g. ``cada_vae``).
LEGACY_SETTINGS = {"epochs": 50, "hidden": (512, 512), "class_repeats": 15}


def retrieval_settings(recipe: "Recipe") -> dict[str, Any]:
    """The recipe's ``[retrieval]`` epochs, hidden sizes and class repeats (or `LEGACY_SETTINGS`)."""
    table = recipe.retrieval
    return dict(LEGACY_SETTINGS) if table is None else {"epochs": table.epochs, "hidden": tuple(table.hidden),
                                                         "class_repeats": table.class_repeats}
#: Shipped float16 sentence vectors vs a fresh encoding: largest allowed absolute difference.
RECOMPUTE_TOLERANCE = 2e-3


def scaled_warmup(epochs: int, recipe: "Recipe | str" = CUB_TEXT_RECIPE) -> dict[str, dict[str, float]]:
    """The recipe's warm-up ramps compressed to ``epochs`` (from the recipe's own epoch count), so a
    short run still goes through the whole schedule."""
    r = load_recipe(recipe)
    f = epochs / r.training.epochs
    return {family: ramp.scaled(f).model_dump(exclude_none=True) for family, ramp in r.training.warmup.items()}


def wiki_vectors(bundle: CubText, recompute: str = "auto", log=print) -> tuple[dict[str, np.ndarray], dict]:
    """The MiniLM tensors: shipped, or (``recompute`` "auto" with the model installed, or
    "always") re-encoded by the text plugin's encoder and compared with the shipped ones."""
    from ..text.model import default_model_dir

    shipped = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in bundle.minilm.items()}
    info: dict[str, Any] = {"source": "shipped", "shipped_model_identity": bundle.minilm_meta.get("model_identity")}
    if recompute == "never" or (recompute == "auto" and default_model_dir() is None):
        return shipped, info
    if recompute not in ("auto", "always", "never"):
        raise ConfigError(f"recompute must be 'auto', 'always' or 'never', got {recompute!r}")
    from ..text import TextEncoder

    encoder = TextEncoder(progress=True)
    fresh = encode_wikipedia(bundle, encoder)
    diffs = {k: float(np.abs(fresh[k].astype(np.float64) - shipped[k]).max()) for k in ("class_all", "class_visual", "sentences_visual")}
    cached = encoder.forward_calls == 0
    info.update(source="recomputed", model_identity=encoder.resolved.identity, max_abs_diff=diffs,
                matches_shipped=all(d <= RECOMPUTE_TOLERANCE for d in diffs.values()), from_cache=cached)
    how = "read the cached encodings of" if cached else "re-encoded"
    log(f"cub-text: {how} the Wikipedia sentences with {encoder.resolved.name}; largest difference "
        f"from the shipped vectors {max(diffs.values()):.2e} (tolerance {RECOMPUTE_TOLERANCE:g})")
    if not info["matches_shipped"]:
        warnings.warn(f"re-encoded Wikipedia vectors differ from the shipped ones: {diffs}; using the re-encoded ones")
    return fresh, info


def _progress(items: list, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="fit", leave=False)


def class_arrays(bundle: CubText, vectors: dict[str, np.ndarray], sentences: str) -> dict[str, np.ndarray]:
    """One row per class for each modality (the inputs of the baselines and of retrieval)."""
    return {"att": bundle.attributes, "sent": bundle.sentence_embeddings, "wiki": vectors[f"class_{sentences}"],
            "w2v": bundle.w2v_class_vectors()}


def alignment_data(bundle: CubText, vectors: dict[str, np.ndarray], text_mode: str, sentences: str, class_repeats: int):
    """The `AlignmentData` the Aligner trains on (``trainval`` = seen classes only)."""
    from ..data import AlignmentData

    arrays = class_arrays(bundle, vectors, sentences)
    class_features = {"att": arrays["att"], "sent": arrays["sent"], "w2v": arrays["w2v"]}
    if text_mode == "class":
        class_features["wiki"] = arrays["wiki"]
        seen, unseen = bundle.seen, bundle.unseen
        labels = np.concatenate([np.repeat(seen, class_repeats), seen, unseen])
        n = seen.size * class_repeats
        splits = {"trainval": np.arange(n), "test_seen": np.arange(n, n + seen.size),
                  "test_unseen": np.arange(n + seen.size, labels.size)}
        return AlignmentData(labels, bundle.class_names, {}, class_features, splits, name="cub-text")
    if sentences != "visual":
        raise ConfigError("text_mode='sentences' trains on the visual sentences (shipped per sentence); use sentences='visual'")
    _, flat_labels = bundle.flat_sentences()
    labels = flat_labels[vectors["visual_index"]].astype(np.int64)
    is_seen = np.isin(labels, bundle.seen)
    held = []  # one sentence per seen class with >= 3 sentences: a non-empty test_seen (unused here)
    for c in bundle.seen:
        rows = np.flatnonzero(labels == c)
        if rows.size >= 3:
            held.append(rows[-1])
    held = np.array(held, dtype=np.int64)
    splits = {"trainval": np.setdiff1d(np.flatnonzero(is_seen), held), "test_seen": held,
              "test_unseen": np.flatnonzero(~is_seen)}
    return AlignmentData(labels, bundle.class_names, {"wiki": vectors["sentences_visual"]}, class_features, splits,
                         name="cub-text")


def build_modalities(names: Sequence[str], text_mode: str, hidden: tuple[int, int]):
    from mmalign_plugins.class_embeddings import ClassAttributes, SentenceEmbeddings
    from mmalign_plugins.text import ClassText, TextModality

    text = ClassText if text_mode == "class" else TextModality
    factory = {"att": lambda: ClassAttributes("att", source="att", hidden=hidden),
               "sent": lambda: SentenceEmbeddings("sent", source="sent", hidden=hidden),
               "wiki": lambda: text("wiki", source="wiki", hidden=hidden),
               "w2v": lambda: ClassAttributes("w2v", source="w2v", hidden=hidden)}
    return [factory[n]() for n in names]


def aligner_scores(aligner, a: str, b: str, arrays: dict[str, np.ndarray], unseen: np.ndarray) -> dict[str, dict[str, float]]:
    """Retrieval metrics of ``a`` -> ``b`` through `Aligner.retrieve`:
    unseen queries among the unseen classes (``zsl``) and among all classes (``gzsl``)."""
    galleries = {"zsl": unseen, "gzsl": np.arange(arrays[b].shape[0])}
    out = {}
    for setting, gallery in galleries.items():
        indices, scores = aligner.retrieve(a, arrays[a][unseen], b, arrays[b][gallery], k=None)
        sim = np.empty_like(scores)
        np.put_along_axis(sim, indices, scores, axis=1)  # the full similarity matrix, in gallery order
        out[setting] = retrieval_metrics(sim, unseen, gallery)
    return out


def run_cub_text(
    seeds: Iterable[int] = (0, 1, 2),
    epochs: int | None = None,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    out: str | Path | None = None,
    *,
    text_mode: Literal["sentences", "class"] = "class",
    sentences: Literal["visual", "all"] = "visual",
    baselines: Sequence[str] = ("ridge", "cca"),
    hidden: tuple[int, int] | None = None,
    class_repeats: int | None = None,
    device: str = "cpu",
    recompute: Literal["auto", "always", "never"] = "auto",
    progress: bool = True,
    resume: bool = False,
    force: bool = False,
    log=print,
    recipe: "Recipe | str | None" = None,
    aligner_overrides: dict[str, Any] | None = None,
    alignments: Sequence[Sequence[str]] | None = None,
) -> list[ResultRecord]:
    """Run the CUB text retrieval benchmark; returns its records (`ResultRecord`,
    metrics in percent), one per (method, modalities, query -> gallery, setting, seed).

    Args:
        seeds: one Aligner per seed and alignment (baseline CV folds use the seed too).
        epochs: Aligner epochs (default: the recipe's ``[retrieval]`` epochs, 50 without that table;
            warm-up ramps scaled, see `scaled_warmup`).
        modalities: at least two of ``("att", "sent", "wiki", "w2v")`` (default the first three);
            every sub-alignment of >= 2 is trained unless ``alignments`` says otherwise.
        out: folder for ``results.json`` (each record appended as soon as its fit is scored) and
            ``table.md`` (nothing written when None).
        text_mode: ``"class"`` (default): one pooled Wikipedia vector per class, samples are
            ``class_repeats`` copies of each seen class; ``"sentences"``: the visual sentences
            are the Aligner's samples (``wiki`` per sample). ``"class"`` aligned better on average
            (benchmarks/CUB_TEXT.md).
        sentences: which sentences make a class's pooled vector: ``"visual"`` (default) or ``"all"``.
        baselines: any of ``"ridge"``, ``"cca"`` (empty to skip).
        hidden: (encoder, decoder) hidden sizes of every modality (default: the recipe's
            ``[retrieval]`` sizes, (512, 512) without that table).
        class_repeats: copies of each seen class per epoch when ``text_mode="class"`` (default:
            the recipe's, 15).
        device: the Aligner's device (default ``"cpu"``; ``"auto"`` picks CUDA when present).
        recompute: ``"auto"`` re-encodes the sentences when the MiniLM package is installed and
            compares with the shipped vectors; ``"never"`` uses the shipped ones; ``"always"``.
        progress: progress bars (one over the fits, one per Aligner's training).
        resume: skip fits whose records are all in ``out/results.json`` (default False).
        force: fit again and replace records already there (default False). Without either, a
            record already there is refused before anything runs.
        recipe: the `Recipe` (or its name or file) the Aligners' defaults
            come from (default `CUB_TEXT_RECIPE`, the best measured one); its name is part
            of every aligner record's identity.
        aligner_overrides: further Aligner config (e.g. ``{"training": {"engine": ...},
            "reparameterization": ...}``), merged under the benchmark's seed, device, epochs and
            scaled warm-up.
        alignments: the modality sets to fit aligners on (each >= 2 of ``modalities``; default
            every subset of at least two), e.g. ``[("att", "sent", "wiki", "w2v")]`` for M = 4 alone.
    """
    from ..aligner import Aligner
    from ..config import make_config

    names = list(dict.fromkeys(modalities))
    if len(names) < 2 or not set(names) <= set(MODALITIES):
        raise ConfigError(f"modalities must be at least two of {MODALITIES}, got {list(modalities)}")
    recipe = load_recipe(CUB_TEXT_RECIPE if recipe is None else recipe)  # once for the whole run
    settings = retrieval_settings(recipe)
    epochs = settings["epochs"] if epochs is None else epochs
    hidden = settings["hidden"] if hidden is None else tuple(hidden)
    class_repeats = settings["class_repeats"] if class_repeats is None else class_repeats
    if text_mode not in ("sentences", "class") or sentences not in ("visual", "all"):
        raise ConfigError(f"text_mode must be 'sentences' or 'class' and sentences 'visual' or 'all', got {text_mode!r}, {sentences!r}")
    if text_mode == "sentences" and sentences != "visual":
        raise ConfigError("text_mode='sentences' trains on the visual sentences (shipped per sentence); use sentences='visual'")
    seeds = [int(s) for s in seeds]
    subsets = [c for k in range(2, len(names) + 1) for c in itertools.combinations(names, k)]
    if alignments is not None:
        wanted = [tuple(dict.fromkeys(a)) for a in alignments]
        bad = [a for a in wanted if len(a) < 2 or not set(a) <= set(names)]
        if bad:
            raise ConfigError(f"alignments must each be at least two of the modalities {names}, got {list(bad[0])}")
        subsets = wanted
    path = Path(out) / "results.json" if out is not None else None
    existing = load_records(path) if path is not None else []

    overrides = dict(aligner_overrides or {})

    def config(seed: int) -> dict[str, Any]:
        training = {**overrides.get("training", {}), "epochs": epochs, "warmup": scaled_warmup(epochs, recipe)}
        return {**overrides, "seed": seed, "device": device, "training": training}

    def keys(method: str, subset: Sequence[str], seed: int) -> list[dict[str, Any]]:
        """The identifying fields of every record one fit produces."""
        base: dict[str, Any] = {"command": "cub-text", "dataset": "cub-text", "seed": seed, "method": method,
                                "modalities": list(subset), "shots": 0}
        if method == "aligner":
            cfg = make_config(config(seed), recipe)
            base.update(recipe=recipe.name, reparameterization=cfg.reparameterization, epochs_vae=epochs,
                        engine=getattr(cfg.training, "engine", None), precision=getattr(cfg.training, "precision", None))
        directions = itertools.permutations(subset, 2) if method == "aligner" else [tuple(subset)]  # a map a -> b
        return [{**base, "query": a, "gallery": b, "setting": setting} for a, b in directions for setting in ("zsl", "gzsl")]

    units = [(m, (a, b), seed) for m in baselines for seed in seeds for a, b in itertools.permutations(names, 2)]
    units += [("aligner", subset, seed) for subset in subsets for seed in seeds]
    done: dict[tuple, list[ResultRecord]] = {}
    partial: set[tuple] = set()  # resumed fits with only some records written: fitted again, records replaced
    for method, subset, seed in units:
        found = [check_rerun(existing, k, path, resume, force) for k in keys(method, subset, seed)] if path else []
        if found and all(found):
            done[(method, tuple(subset), seed)] = found
        elif any(found):
            partial.add((method, tuple(subset), seed))

    started = time.perf_counter()
    bundle = load_cub_text()
    vectors, text_info = wiki_vectors(bundle, recompute if "wiki" in names else "never", log)
    arrays = class_arrays(bundle, vectors, sentences)
    data = alignment_data(bundle, vectors, text_mode, sentences, class_repeats)
    shared = _shared_fields(text_mode, sentences, hidden, class_repeats, device, text_info, data, bundle)
    records: list[ResultRecord] = []

    def emit(method: str, subset: Sequence[str], seed: int, scores: dict, seconds: dict, extra: dict) -> None:
        for key in keys(method, subset, seed):
            metrics = scores[(key["query"], key["gallery"])][key["setting"]]
            record = ResultRecord.model_validate({
                **key, **shared, **extra, "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "metrics": {k: 100.0 * float(metrics[k]) for k in ("top1", "top5", "mrr")},
                "details": {**shared["details"], **extra.get("details", {})},
            })
            if path is not None:
                write_record(path, record, replace=force or (method, tuple(subset), seed) in partial)
            records.append(record)

    for method, subset, seed in _progress(units, "cub-text fits", progress):
        if (method, tuple(subset), seed) in done:
            records.extend(done[(method, tuple(subset), seed)])
            log(f"resume: cub-text {method} {'+'.join(subset)} seed {seed} already in {path}; skipped")
            continue
        t0 = time.perf_counter()
        if method != "aligner":
            a, b = subset
            galleries = {"zsl": bundle.unseen, "gzsl": np.arange(bundle.num_classes)}
            sims, params = baseline_retrieval(method, arrays[a], arrays[b], bundle.seen,
                                              [(bundle.unseen, g) for g in galleries.values()], seed=seed)
            scores = {(a, b): {s: retrieval_metrics(sim, bundle.unseen, g) for (s, g), sim in zip(galleries.items(), sims)}}
            emit(method, subset, seed, scores, {"fit": time.perf_counter() - t0}, {"details": {"params": params}})
            continue
        aligner = Aligner(build_modalities(subset, text_mode, hidden), config(seed), recipe=recipe)
        aligner.fit(data, progress=progress)
        fitted = time.perf_counter()
        scores = {(a, b): aligner_scores(aligner, a, b, arrays, bundle.unseen) for a, b in itertools.permutations(subset, 2)}
        extra = {**aligner_provenance(aligner), "details": {"final_loss": aligner.history[-1].terms["loss"],
                                                            "recipe": recipe.name}}
        emit(method, subset, seed, scores, {"vae": fitted - t0, "retrieval": time.perf_counter() - fitted}, extra)
        log(f"cub-text: aligner {'+'.join(subset)} seed {seed} in {time.perf_counter() - t0:.1f} s")
    log(f"cub-text: {len(records)} records in {time.perf_counter() - started:.1f} s")
    if out is not None:
        write_bytes_atomic(Path(out) / "table.md", render(records).encode("utf-8"))
    return records


def _shared_fields(text_mode, sentences, hidden, class_repeats, device, text_info, data, bundle) -> dict[str, Any]:
    """What every cub-text record of one run has in common."""
    from ..aligner import resolve_device

    return {
        "device": str(resolve_device(device)), "device_name": device_name(resolve_device(device)),
        "versions": versions(), "data_hashes": {"arrays": array_hash(data)},
        "details": {
            "text_mode": text_mode, "sentences": sentences, "hidden": list(hidden),
            "class_repeats": class_repeats if text_mode == "class" else None,
            "train_samples": int(data.splits["trainval"].size), "seen_classes": int(bundle.seen.size),
            "unseen_classes": int(bundle.unseen.size), "similarity": "cosine", "text_vectors": text_info,
        },
    }
