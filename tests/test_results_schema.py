"""One result schema: versioned, published as JSON Schema, older files converted, one record per
(config, seed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from mmalign.cli import main
from mmalign.errors import ConfigError, DataError
from mmalign.records.files import check_rerun, load_records, write_record
from mmalign.records.schema import SCHEMA_VERSION, ResultRecord, results_json_schema

V1 = Path(__file__).parent / "fixtures" / "results_v1"


def published_schema(capsys) -> dict:
    assert main(["schema", "results"]) == 0
    return json.loads(capsys.readouterr().out)


def test_schema_command_prints_the_json_schema_of_a_results_file(capsys):
    schema = published_schema(capsys)
    assert schema == results_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    record = schema["$defs"]["ResultRecord"]
    assert record["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    for field in ("dataset", "setting", "shots", "seed", "side_info", "reparameterization", "policy", "engine",
                  "precision", "device", "versions", "config_hash", "data_hashes", "seconds", "metrics", "history"):
        assert field in record["properties"], field


@pytest.mark.parametrize("name, command, count", [("benchmark", "benchmark", 3), ("eval", "eval", 1),
                                                  ("cub_text", "cub-text", 48)])
def test_migrate_loads_files_written_by_the_previous_release(capsys, name, command, count):
    schema = published_schema(capsys)
    records = load_records(V1 / f"{name}.json")
    assert len(records) == count and {r.command for r in records} == {command}
    assert all(r.migrated_from == f"{command} (schema version 1)" for r in records)
    jsonschema.validate([json.loads(r.model_dump_json(exclude_none=True)) for r in records], schema)
    old = json.loads((V1 / f"{name}.json").read_text())
    if command == "cub-text":  # fractions then, percent now
        first = old["records"][0]
        assert records[0].metrics == pytest.approx({k: 100 * first[k] for k in ("top1", "top5", "mrr")})
        assert records[0].modalities == first["alignment"].split("+") and records[0].versions.mmalign == "0.1.0"
    else:
        assert records[0].metrics == {k: old[0][k] for k in ("S", "U", "H")}
        assert records[0].policy == "fixed" and records[0].reparameterization == "cada2019"
        assert records[0].seconds == old[0]["seconds"]
    if command == "benchmark":
        assert records[0].config_hash == old[0]["config_hash"] and records[0].versions.torch == old[0]["torch_version"]
        assert records[-1].setting == "zsl" and set(records[-1].metrics) == {"top1"}


def test_write_record_converts_an_old_file_and_keeps_the_original(tmp_path, capsys):
    path = tmp_path / "results.json"
    shutil.copy(V1 / "cub_text.json", path)
    new = load_records(path)[0].model_copy(update={"seed": 7, "migrated_from": None})
    write_record(path, new)
    saved = json.loads(path.read_text())
    assert isinstance(saved, list) and len(saved) == 49 and saved[-1]["seed"] == 7
    assert all(r["schema_version"] == SCHEMA_VERSION for r in saved)
    jsonschema.validate(saved, published_schema(capsys))
    assert (tmp_path / "results.v1.json").read_text() == (V1 / "cub_text.json").read_text()


def test_check_rerun_refuses_a_recorded_config_and_seed_naming_resume_and_force(tmp_path):
    path = tmp_path / "results.json"
    shutil.copy(V1 / "benchmark.json", path)
    existing = load_records(path)
    probe = {k: getattr(existing[0], k) for k in ("command", "dataset", "setting", "shots", "seed", "side_info",
                                                   "modalities", "reparameterization", "policy", "epochs_vae",
                                                   "synthetic", "engine", "precision")}
    with pytest.raises(ConfigError, match=r"seed 0 is already recorded; pass --resume .* or --force"):
        check_rerun(existing, probe, path, resume=False, force=False)
    assert check_rerun(existing, probe, path, resume=True, force=False) == existing[0]
    assert check_rerun(existing, probe, path, resume=False, force=True) is None
    assert check_rerun(existing, {**probe, "seed": 5}, path, resume=False, force=False) is None
    write_record(path, existing[0].model_copy(update={"metrics": {"S": 1.0, "U": 2.0, "H": 1.3}}), replace=True)
    again = load_records(path)
    assert len(again) == 3 and again[-1].metrics["S"] == 1.0  # replaced, not duplicated


def test_schema_rejects_fractions_unknown_metrics_and_unknown_keys(tmp_path):
    base = {"schema_version": SCHEMA_VERSION, "command": "eval", "dataset": "CUB", "setting": "gzsl", "seed": 0,
            "versions": {"mmalign": "0.1.0"}, "metrics": {"S": 50.0}}
    ResultRecord.model_validate(base)
    for bad, key in (({"metrics": {"S": 150.0}}, "metrics"), ({"metrics": {"acc": 5.0}}, "metrics"),
                     ({"colour": "red"}, "colour"), ({"schema_version": 3}, "schema_version")):
        path = tmp_path / "results.json"
        path.write_text(json.dumps([{**base, **bad}]))
        with pytest.raises(DataError, match=rf"{path}: record 0.*'{key}"):
            load_records(path)


def test_schema_published_in_docs_is_the_current_one(capsys):
    published = json.loads((Path(__file__).parents[1] / "docs" / "results.schema.json").read_text())
    assert published == published_schema(capsys), "regenerate: mmalign schema results > docs/results.schema.json"
