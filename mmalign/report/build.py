"""Assemble the report: read each RUN_DIR, draw its figures, write the PNGs and the page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

from ..atomic import write_atomic, write_bytes_atomic
from ..checkpoint import CONFIG, MODEL
from ..errors import ConfigError, MmalignError, OutputError
from ..outputs import check_output_dir
from ..records.provenance import source_commit
from ..records.tables import results_table
from .page import GENERATOR, Picture, Section, render_page
from .runs import RunDir, read_run_dirs

REPORT_EXTRA = "pip install 'mmalign[report]'"


def slug(name: str) -> str:
    """A file-name-safe version of a run's name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "run"


def make_report(paths: Sequence[Path], out: Path, data_dir: str | None = None, max_points: int = 1500,
                log: Callable[[str], None] = print) -> Path:
    """Write ``out/index.html`` and its PNGs (``max_points`` test images at most in a latent map,
    default 1500; ``data_dir`` overrides the data root the checkpoint recorded); returns the page."""
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"mmalign report needs the {exc.name} package: {REPORT_EXTRA}") from None
    paths = [Path(p) for p in paths]
    check_report_output(out, paths)
    runs = read_run_dirs(paths)
    check_report_output(out, paths, [name for run in runs for name in figure_files(run.name)]
                        + (["comparison-loss.png"] if len(runs) > 1 else []))
    out.mkdir(parents=True, exist_ok=True)
    sections = [_run_section(run, out, data_dir, max_points, log) for run in runs]
    if len(runs) > 1:
        sections.append(_comparison(runs, out))
    commits = sorted({r.versions.commit for run in runs for r in run.records if r.versions.commit})
    facts = [("runs", ", ".join(str(run.path) for run in runs)),
             ("results made by", ", ".join(f"commit {c}" for c in commits) or "no commit recorded (older results or an installed wheel)"),
             ("report made by", f"mmalign commit {source_commit() or 'unknown (not a git checkout)'}")]
    page = out / "index.html"
    write_bytes_atomic(page, render_page("mmalign report", facts, sections).encode("utf-8"))
    return page


#: The figures of one run, ``<slug>-<kind>.png``.
FIGURE_KINDS = ("loss", "latent", "per-class", "confusion", "paper", "fewshot", "retrieval")


def figure_files(run_name: str) -> list[str]:
    """Every PNG the report may write for the run called ``run_name``."""
    return [f"{slug(run_name)}-{kind}.png" for kind in FIGURE_KINDS]


def is_report_page(path: Path) -> bool:
    """Whether ``path`` is a page ``mmalign report`` wrote (its generator tag, or the footer of
    earlier releases)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return False
    return GENERATOR in text or "Made by <code>mmalign report</code>" in text


def check_report_output(out: Path, inputs: Sequence[Path], writes: Sequence[str] = ()) -> None:
    """Refuse, before anything is drawn, an ``out`` that cannot take the report, or where it would
    replace a file mmalign did not write: an ``index.html`` that is not a report page, or (in a
    folder without a report page) a PNG of the same name as one of the report's."""
    check_output_dir(out, "--out", writes=("index.html", *writes),
                     inputs=[p / name for p in inputs for name in ("results.json", CONFIG, MODEL)])
    page = out / "index.html"
    if page.is_symlink() or (page.exists() and not (page.is_file() and is_report_page(page))):
        raise OutputError(f"--out {out}: index.html there was not written by mmalign report; the report would "
                          "replace it: choose another --out")
    if not page.exists():
        taken = [name for name in writes if (out / name).exists() or (out / name).is_symlink()]
        if taken:
            raise OutputError(f"--out {out}: {taken[0]} there was not written by mmalign report (no report page "
                              "beside it); the report would replace it: choose another --out")


def _save(fig, out: Path, name: str, title: str, caption: str) -> Picture:
    write_atomic(out / name, lambda tmp: fig.savefig(tmp, format="png"))
    return Picture(name, title, caption)


#: What a figure function raises on values the results schema lets through but it cannot draw.
_UNDRAWABLE = (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError)


def _add(section: Section, draw: Callable[[], object], out: Path, name: str, title: str, caption: str) -> None:
    """Draw one figure into ``section``; values it cannot draw become a note on the page instead."""
    try:
        figure = draw()
    except _UNDRAWABLE as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        section.notes.append(f"{title}: not drawn, the recorded values cannot be plotted ({type(exc).__name__}: {first}).")
        return
    section.pictures.append(_save(figure, out, name, title, caption))


def _data_facts(run: RunDir) -> list[tuple[str, str]]:
    records = run.records
    datasets = sorted({f"{r.dataset}{' (synthetic)' if r.synthetic else ''}" for r in records})
    hashes = sorted({f"{k}: {v[:16]}" for r in records for k, v in r.data_hashes.items()})
    commands = sorted({r.command for r in records})
    seeds = sorted({r.seed for r in records})
    facts = [("folder", str(run.path))]
    if records:
        facts += [("data", ", ".join(datasets)), ("data hashes (sha256, first 16)", "; ".join(hashes) or "not recorded"),
                  ("written by", ", ".join(f"mmalign {c}" for c in commands)), ("seeds", ", ".join(map(str, seeds))),
                  ("records", str(len(records)))]
    if run.checkpoints:
        facts.append(("checkpoints", ", ".join(str(p) for p in run.checkpoints)))
    return facts


def _run_section(run: RunDir, out: Path, data_dir: str | None, max_points: int, log) -> Section:
    import mmalign.report.figures as figures

    stem = slug(run.name)
    section = Section(f"Run {run.name}", _data_facts(run), _tables(run.records))
    trainings = run.trainings()
    for i, training in enumerate(trainings):
        name = f"{stem}-loss.png" if len(trainings) == 1 else f"{stem}-loss-{i + 1}.png"
        _add(section, lambda: figures.loss_curves(training.history, f"{run.name}: training loss per term, {training.label}"), out, name,
            f"Loss curves: {training.label}", f"Every loss term's mean per epoch ({len(training.history)} epoch(s)) "
            "and each loss family's warm-up weight; a family whose weight is still 0 is not yet trained.")
    if not trainings:
        section.notes.append("No training history was recorded in this folder (results of mmalign 0.1.0).")
    if run.checkpoints:
        checkpoint = run.checkpoints[0]
        log(f"report: latent map of {checkpoint} (t-SNE)")
        try:
            from .latent_map import latent_map

            m = latent_map(checkpoint, data_dir=data_dir, max_points=max_points)
        except MmalignError as exc:
            section.notes.append(f"No latent map: {exc}")
        else:
            data = f"{m.dataset}{' (synthetic)' if m.synthetic else ''}"
            _add(section, lambda: figures.latent_scatter(m, f"{run.name}: latent means of {data}, t-SNE"), out, f"{stem}-latent.png",
                "Latent map", f"Checkpoint {checkpoint}: posterior means of {int((m.modality == m.modality[0]).sum())} "
                "test images and of every class's side information, embedded together with t-SNE. Aligned modalities "
                "put a class's side information among its images.")
    evaluated = [r for r in run.records if r.command != "cub-text"]
    detailed = next((r for r in evaluated if any(r.per_class.values())), None)
    if detailed is None and any(r.per_class for r in evaluated):
        section.notes.append("Per-class accuracy: not drawn, the records' per-class tables are empty.")
    if detailed is not None:
        name = f"{detailed.dataset} {detailed.setting}, {detailed.shots} shots, seed {detailed.seed}"
        _add(section, lambda: figures.per_class_accuracy(detailed, f"{run.name}: per-class accuracy ({name})"), out,
            f"{stem}-per-class.png", "Per-class accuracy", "Accuracy of every test class, sorted; S over the seen "
            "classes' test images, U over the unseen ones.")
        if detailed.confusion is not None and not (detailed.confusion.rows and detailed.confusion.columns):
            section.notes.append("Confusion of the worst classes: not drawn, the recorded table is empty.")
        elif detailed.confusion is not None:
            _add(section, lambda: figures.confusion(detailed, f"{run.name}: confusion of the worst classes ({name})"), out,
                f"{stem}-confusion.png", "Confusion of the worst classes",
                "Rows: the classes with the lowest accuracy; columns: what their test images were predicted as.")
    if evaluated:
        _add(section, lambda: figures.against_paper(evaluated, f"{run.name}: results against the paper"), out, f"{stem}-paper.png",
            "Against the paper", "Mean ± std over seeds; green: the paper's number and the tolerance of "
            "registry/references (synthetic data is never judged against it).")
        _add(section, lambda: figures.fewshot_curves(evaluated, f"{run.name}: accuracy against shots"), out, f"{stem}-fewshot.png",
            "Few-shot curve", "H (GZSL) or top-1 (ZSL) against the images per unseen class moved to training, "
            "beside the paper's AWA2 generalized few-shot points.")
    retrieval = [r for r in run.records if r.command == "cub-text"]
    if retrieval:
        _add(section, lambda: figures.retrieval_bars(retrieval, f"{run.name}: cub-text retrieval top-1"), out, f"{stem}-retrieval.png",
            "Cross-modal retrieval", "Top-1 per query → gallery direction, mean ± std over seeds, for the ridge and "
            "CCA baselines and every aligner.")
    return section


def _tables(records) -> str:
    """A run's table: cub-text's retrieval as its compact per-direction tables (as `table.md`), other
    results as the table every command prints."""
    from ..retrieval.report import markdown_table, summarize

    retrieval = [r for r in records if r.command == "cub-text"]
    others = [r for r in records if r.command != "cub-text"]
    parts = [results_table(others)] if others else []
    if retrieval:
        summary = summarize(retrieval)
        parts += [f"cub-text retrieval, {setting} (percent, mean ± std over seeds):\n{markdown_table(summary, setting)}"
                  for setting in ("zsl", "gzsl") if any(r["setting"] == setting for r in summary)]
    return "\n\n".join(parts)


def _comparison(runs: Sequence[RunDir], out: Path) -> Section:
    from .compare import classification_figure, comparable_groups, losses_figure, retrieval_figure

    names = " vs ".join(run.name for run in runs)
    section = Section("Runs side by side", [("runs", names)])
    for group in comparable_groups([(run.name, run.records) for run in runs]):
        draw = classification_figure if group.kind == "classification" else retrieval_figure
        _add(section, lambda: draw(group), out, f"comparison-{slug(group.title)}.png", group.title,
            f"Runs {', '.join(group.by_run)}: one bar per run and configuration, mean ± std over its seeds.")
    trainings = [(run.name, run.trainings()) for run in runs]
    if sum(1 for _, ts in trainings if ts) > 1:
        _add(section, lambda: losses_figure(trainings), out, "comparison-loss.png", "Total training loss",
            "Each run's trained configurations (lowest seed): the total loss per epoch.")
    if not section.pictures:
        section.notes.append("No data set, setting and shot count is shared by two runs, so there is nothing to "
                             "draw side by side; each run's figures are in its section.")
    return section
