"""The one table every command prints: mean ± std over distinct seeds beside the paper with
pass/fail, and the wall time per phase."""

import re

from mmalign.records.schema import ResultRecord
from mmalign.records.tables import phase_times, results_table


def record(seed, U, S, H, synthetic=False, device="NVIDIA H100", engine="eager", seconds=None, command="benchmark"):
    return ResultRecord.model_validate({
        "command": command, "dataset": "CUB", "setting": "gzsl", "shots": 0, "seed": seed, "side_info": "attributes",
        "modalities": ["img", "att"], "synthetic": synthetic, "metrics": {"U": U, "S": S, "H": H},
        "device_name": device, "engine": engine, "precision": "fp32", "versions": {"mmalign": "0.1.0"},
        "seconds": seconds or {"vae": 10.0, "sampling": 0.1, "classifier": 1.5}})


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def rows(table):
    return {cells(line)[6]: line for line in table.splitlines()[2:]}


def test_results_table_compares_the_mean_over_seeds_with_the_paper_within_its_tolerance():
    # paper CUB GZSL: U 51.6, S 53.5, H 52.4; tolerance 2.0 points
    table = rows(results_table([record(0, 50.0, 52.0, 51.0), record(1, 52.0, 60.0, 53.0)]))
    assert "51.00 ± 1.41" in table["U"] and table["U"].endswith("pass")       # |51.0 - 51.6| <= 2
    assert "56.00 ± 5.66" in table["S"] and "FAIL" in table["S"]              # |56.0 - 53.5| > 2
    assert "52.00 ± 1.41" in table["H"] and table["H"].endswith("pass")
    assert all(cells(line)[5] == "2" for line in table.values())            # two seeds


def test_results_table_counts_distinct_seeds():
    # an old file held seed 0 twice: that is one seed, not two with a spread of 0
    table = rows(results_table([record(0, 50.0, 52.0, 51.0), record(0, 50.0, 52.0, 51.0), record(1, 52.0, 60.0, 53.0)]))
    assert all(cells(line)[5] == "2" for line in table.values())
    table = rows(results_table([record(0, 50.0, 52.0, 51.0), record(0, 50.0, 52.0, 51.0)]))
    assert all(cells(line)[5] == "1" for line in table.values())


def test_results_table_never_judges_synthetic_data_against_the_paper():
    table = rows(results_table([record(0, 18.9, 88.9, 31.2, synthetic=True)]))
    assert all(line.endswith("n/a (synthetic data)") for line in table.values())


def test_results_table_has_one_layout_for_every_command():
    retrieval = ResultRecord.model_validate({
        "command": "cub-text", "dataset": "cub-text", "setting": "zsl", "seed": 0, "method": "ridge",
        "modalities": ["att", "wiki"], "query": "att", "gallery": "wiki", "versions": {"mmalign": "0.1.0"},
        "metrics": {"top1": 12.0, "top5": 40.0, "mrr": 25.0}})
    tables = [results_table([record(0, 50.0, 52.0, 51.0, command=c)]) for c in ("benchmark", "eval")]
    tables.append(results_table([retrieval]))
    headers = {tuple(cells(t.splitlines()[0])) for t in tables}
    assert len(headers) == 1 and "±" in tables[2] and "+-" not in "".join(tables)
    assert "ridge att->wiki" in tables[2]


def test_phase_times_are_means_per_device_and_engine():
    out = phase_times([
        record(0, 1, 1, 1, seconds={"vae": 10.0, "sampling": 0.2, "classifier": 1.0}),
        record(1, 1, 1, 1, seconds={"vae": 14.0, "sampling": 0.4, "classifier": 2.0}),
        record(0, 1, 1, 1, device="AMD EPYC (1 threads)", seconds={"vae": 1173.3, "sampling": 1.1, "classifier": 2.7}),
    ]).splitlines()
    assert out[1] == "  benchmark on NVIDIA H100, engine eager fp32, 2 record(s): vae 12.0, sampling 0.3, classifier 1.5; total 13.8"
    assert out[2] == ("  benchmark on AMD EPYC (1 threads), engine eager fp32, 1 record(s): vae 1173.3, sampling 1.1, "
                      "classifier 2.7; total 1177.1")


def test_results_table_std_is_the_sample_std_everywhere():
    """Every ± std mmalign prints, writes or documents is the sample standard deviation (ddof=1)."""
    import re
    from pathlib import Path

    from mmalign.records.tables import mean_std

    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_std([4.0]) == (4.0, 0.0)
    root = Path(__file__).resolve().parents[1]
    calls = [(path, m.group(0)) for folder in ("mmalign", "plugins", "benchmarks") for path in (root / folder).rglob("*.py")
             for m in re.finditer(r"\bstd\([^()]*(\([^()]*\)[^()]*)*\)", path.read_text())]
    assert calls, "no std call found: the pattern is wrong"
    population = [(str(p.relative_to(root)), call) for p, call in calls if "ddof=1" not in call]
    assert not population, f"standard deviations without ddof=1: {population}"
    assert "sample" in (root / "benchmarks" / "CUB_TEXT.md").read_text().split("ddof = 1")[0][-300:]
