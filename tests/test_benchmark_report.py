"""What `mmalign benchmark` prints: mean +- std beside the paper with pass/fail, and time per phase."""

from mmalign.benchmark import phase_times, summary_table


def record(seed, U, S, H, synthetic=False, device="NVIDIA H100", engine="eager", seconds=None):
    return {"dataset": "CUB", "setting": "gzsl", "shots": 0, "seed": seed, "side_info": "attributes",
            "synthetic": synthetic, "U": U, "S": S, "H": H, "device_name": device, "engine": engine,
            "precision": "fp32", "seconds": seconds or {"vae": 10.0, "sampling": 0.1, "classifier": 1.5}}


def rows(table):
    return {line.split()[4]: line for line in table.splitlines()[2:]}


def test_summary_compares_the_mean_over_seeds_with_the_paper_within_its_tolerance():
    # paper CUB GZSL: U 51.6, S 53.5, H 52.4; tolerance 2.0 points
    table = rows(summary_table([record(0, 50.0, 52.0, 51.0), record(1, 52.0, 60.0, 53.0)]))
    assert "51.00 +- 1.41" in table["U"] and table["U"].endswith("pass")       # |51.0 - 51.6| <= 2
    assert "56.00 +- 5.66" in table["S"] and "FAIL" in table["S"]              # |56.0 - 53.5| > 2
    assert "52.00 +- 1.41" in table["H"] and table["H"].endswith("pass")
    assert all(" 2 " in line for line in table.values())                       # two seeds


def test_summary_never_judges_synthetic_data_against_the_paper():
    table = rows(summary_table([record(0, 18.9, 88.9, 31.2, synthetic=True)]))
    assert all(line.endswith("n/a (synthetic data)") for line in table.values())


def test_phase_times_are_means_per_device_and_engine():
    out = phase_times([
        record(0, 1, 1, 1, seconds={"vae": 10.0, "sampling": 0.2, "classifier": 1.0}),
        record(1, 1, 1, 1, seconds={"vae": 14.0, "sampling": 0.4, "classifier": 2.0}),
        record(0, 1, 1, 1, device="AMD EPYC (1 threads)", seconds={"vae": 1173.3, "sampling": 1.1, "classifier": 2.7}),
    ]).splitlines()
    assert out[1] == "  NVIDIA H100, engine eager fp32, 2 run(s): vae 12.0, sampling 0.3, classifier 1.5; total 13.8"
    assert out[2] == "  AMD EPYC (1 threads), engine eager fp32, 1 run(s): vae 1173.3, sampling 1.1, classifier 2.7; total 1177.1"
