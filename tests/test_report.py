"""``mmalign report``: a page with every figure, rendered from tiny real runs, opened in a real
headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="mmalign[report] is not installed")
pytest.importorskip("sklearn", reason="mmalign[report] is not installed")

import malformed  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from mmalign.cli import main  # noqa: E402
from mmalign.records.files import load_records  # noqa: E402
from mmalign.report import compare, figures  # noqa: E402
from mmalign.report.runs import Training  # noqa: E402

V1 = Path(__file__).parent / "fixtures" / "results_v1"
CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 3-epoch checkpoint evaluated at 0 and 2 shots, a 2-seed benchmark that keeps its models,
    a cub-text results file of the previous release, and the report of all three."""
    root = tmp_path_factory.mktemp("report")
    folder = malformed.write_dataset(root / "data", "toyR", malformed.small_data(per_class=20, feat_dim=32))
    cfg = {"data": {"dataset": str(folder)},
           "aligner": {"latent_size": 8, "training": {"epochs": 3, "batch_size": 16}}, "modalities": malformed.MODALITIES}
    toml = malformed.write_toml(root / "cfg.toml", cfg)
    assert main(["train", str(toml), "--out", str(root / "ckpt"), "--no-progress"]) == 0
    assert main(["eval", str(root / "ckpt"), "--policy", "test", "--shots", "0", "2"]) == 0
    assert main(["benchmark", "custom", "--data-dir", str(folder), "--epochs", "1", "--seeds", "2", "--shots", "0", "2",
                 "--policy", "test", "--max-classifier-epochs", "5", "--save-models", "--device", "cpu",
                 "--out", str(root / "bench"), "--no-progress"]) == 0
    (root / "cubtext").mkdir()
    shutil.copy(V1 / "cub_text.json", root / "cubtext" / "results.json")
    report = root / "report"
    assert main(["report", str(root / "ckpt"), str(root / "bench"), str(root / "cubtext"), "--out", str(report)]) == 0
    return root, report


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])


EXPECTED = [f"{run}-{kind}.png" for run in ("ckpt", "bench") for kind in
            ("loss", "latent", "per-class", "confusion", "paper", "fewshot")] + [
    "cubtext-retrieval.png", "comparison-TOYR-GZSL-0-shots-attributes.png", "comparison-TOYR-GZSL-2-shots-attributes.png",
    "comparison-loss.png"]


def test_report_draws_every_figure_as_a_valid_non_blank_png(runs):
    _, report = runs
    for name in EXPECTED:
        path = report / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        pixels = imread(path)[..., :3]
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400, name
        assert pixels.std() > 0.05, f"{name} is blank"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{name} has almost no content"


def test_report_page_references_only_files_that_exist_and_says_which_data_and_commit(runs):
    root, report = runs
    page = (report / "index.html").read_text()
    parser = _Refs()
    parser.feed(page)
    assert sorted(parser.images) == sorted(EXPECTED)
    for ref in parser.refs:
        assert not re.match(r"[a-z]+:", ref), f"{ref}: the page must open with no network"
        assert (report / ref).is_file(), ref
    assert "<th>data</th><td>TOYR</td>" in page and "res101.mat: " in page
    assert re.search(r"report made by</th><td>mmalign commit \S+", page)
    assert re.search(r"results made by</th><td>commit [0-9a-f]{12}", page)


def test_report_page_loads_every_image_in_headless_chromium(runs, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium-headless-shell or chromium binary (apt-get install chromium-headless-shell)")
    _, report = runs
    page = (report / "index.html").read_text()
    probe = ("<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push("
             "String(e.message||(e.target&&(e.target.src||e.target.href)))),true);</script>")
    check = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "document.body.setAttribute('data-images',imgs.length);"
             "document.body.setAttribute('data-widths',JSON.stringify(imgs.map(i=>i.naturalWidth)));"
             "document.body.setAttribute('data-errors',JSON.stringify(window.__errors));});</script>")
    (report / "check.html").write_text(page.replace("<head>", "<head>" + probe, 1).replace("</body>", check + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
           (report / "check.html").as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    (report / "check.html").unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout).group(1)
    values = {k: json.loads(v.replace("&quot;", '"')) for k, v in re.findall(r'data-(\w+)="([^"]*)"', body)}
    assert values["images"] == len(EXPECTED)
    assert all(w > 0 for w in values["widths"]), values["widths"]
    assert values["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console


def test_report_figures_have_titles_axis_labels_and_legends(runs):
    root, _ = runs
    bench = load_records(root / "bench" / "results.json")
    retrieval = load_records(root / "cubtext" / "results.json")
    history = [e.model_dump() for e in bench[0].history]
    drawn = [figures.loss_curves(history, "loss"), figures.per_class_accuracy(bench[0], "per class"),
             figures.confusion(bench[0], "confusion"), figures.against_paper(bench, "paper"),
             figures.fewshot_curves(bench, "shots"), figures.retrieval_bars(retrieval, "retrieval"),
             *[(compare.classification_figure if g.kind == "classification" else compare.retrieval_figure)(g)
               for g in compare.comparable_groups([("a", bench), ("b", bench), ("c", retrieval), ("d", retrieval)])],
             compare.losses_figure([("a", [Training("x", history)]), ("b", [Training("y", history)])])]
    for fig in drawn:
        plots = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in plots]
        assert any(titles), fig
        for ax in plots:
            assert ax.get_ylabel(), (titles, ax)
            twin = any(other is not ax and other.get_position().bounds == ax.get_position().bounds for other in plots)
            assert ax.get_xlabel() or twin or ax.get_shared_x_axes().get_siblings(ax) != [ax], (titles, ax)
        assert fig.legends or any(ax.get_legend() for ax in plots), titles


def test_report_loss_curves_draw_the_warmup_weights_on_a_second_axis():
    history = [{"epoch": e, "terms": {"loss": 10.0 - e, "kl/img": 1.0}, "seconds": 0.1,
                "weights": {"kl": 0.25 * e / 4, "cross": 0.0, "align": 8.13 * max(0, e - 2) / 2}} for e in range(5)]
    fig = figures.loss_curves(history, "loss")
    main_ax, twin = fig.axes
    assert twin.get_ylabel().startswith("warm-up weight")
    align = next(line for line in twin.lines if line.get_label() == "weight: align")
    assert list(align.get_ydata()) == [0.0, 0.0, 0.0, 4.065, 8.13]
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"loss", "kl/img", "weight: kl", "weight: align"}


def test_report_of_a_folder_with_nothing_to_report_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "nothing to report" in err[0]


def _pre_lines(page: str) -> list[str]:
    return [line for block in re.findall(r"<pre>(.*?)</pre>", page, re.DOTALL) for line in block.splitlines()
            if line.strip() and not set(line) <= set("-| ")]


def test_report_tables_are_each_printed_once_and_cub_text_is_compact(runs):
    _, report = runs
    page = (report / "index.html").read_text()
    lines = _pre_lines(page)
    rows = [line for line in lines if "±" in line]
    assert len(rows) == len(set(rows)), "a result row is printed twice on the page"
    cub = load_records(runs[0] / "cubtext" / "results.json")
    configs = {(r.setting, r.query, r.gallery, r.method, tuple(r.modalities)) for r in cub}
    retrieval_rows = [line for line in rows if "→" in line]
    assert len(retrieval_rows) == len(configs)  # one row per configuration, top-1, top-5 and MRR side by side
    assert not any("no reference" in line for line in retrieval_rows)


def test_report_draws_one_titled_loss_figure_per_trained_configuration(runs, tmp_path):
    root, _ = runs
    bench = load_records(root / "bench" / "results.json")
    wider = [r.model_copy(update={"modalities": ["img", "att", "sound"]}) for r in bench]
    folder = tmp_path / "two-configs"
    folder.mkdir()
    from mmalign.records.schema import dump_record

    (folder / "results.json").write_text(json.dumps([dump_record(r) for r in bench + wider]))
    assert main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert sorted(p.name for p in (tmp_path / "report").glob("*-loss*.png")) == [
        "two-configs-loss-1.png", "two-configs-loss-2.png"]
    epochs = len(bench[0].history)
    assert f"Loss curves: TOYR aligner img+att, seed 0, {epochs} epoch(s)" in page
    assert f"Loss curves: TOYR aligner img+att+sound, seed 0, {epochs} epoch(s)" in page


def test_report_loss_curves_of_one_epoch_show_their_point():
    history = [{"epoch": 0, "terms": {"loss": 5.0, "recon/img": 4.0}, "seconds": 0.1, "weights": {"kl": 0.0}}]
    fig = figures.loss_curves(history, "loss")
    lines = [line for ax in fig.axes for line in ax.lines]
    assert lines and all(line.get_marker() not in (None, "None", "") for line in lines)
    assert all(np.isfinite(line.get_xydata()).all() for line in fig.axes[0].lines)


def test_report_side_by_side_compares_like_with_like(runs):
    root, _ = runs
    bench = load_records(root / "bench" / "results.json")
    retrieval = load_records(root / "cubtext" / "results.json")
    groups = compare.comparable_groups([("a", bench + retrieval), ("b", bench + retrieval)])
    assert {g.title for g in groups} == {"TOYR GZSL, 0 shots, attributes", "TOYR GZSL, 2 shots, attributes",
                                         "cub-text retrieval top-1 among the 50 unseen classes",
                                         "cub-text retrieval top-1 among all 200 classes"}
    for group in groups:
        draw = compare.classification_figure if group.kind == "classification" else compare.retrieval_figure
        (ax,) = draw(group).axes
        ticks = {t.get_text() for t in ax.get_xticklabels()}
        if group.kind == "classification":
            assert ticks == {"U", "S", "H"}  # never beside retrieval top-k
            shots = int(group.title.split(", ")[1].split()[0])
            mean_h = np.mean([r.metrics["H"] for r in bench if r.shots == shots])
            assert ax.patches[2].get_height() == pytest.approx(mean_h)  # this configuration's seeds only
        else:
            assert ticks == {f"{r.query}→{r.gallery}" for r in retrieval}
            labels = {t.get_text() for t in ax.get_legend().get_texts()}
            methods = {f"{r.method} {'+'.join(r.modalities)}".strip() for r in retrieval}
            assert labels == {f"{run}: {m}" for run in "ab" for m in methods}  # no averaging across methods
    assert compare.comparable_groups([("a", bench), ("b", retrieval)]) == []
