"""Output locations checked before compute; out-of-disk writes fail cleanly; finished work is
rescued when its output cannot be written; memory estimated before allocating."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import malformed
from mmalign.atomic import write_json_atomic
from mmalign.cli import main
from mmalign.errors import ConfigError, OutputError
from mmalign.memory import check_model_memory, parameter_counts
from mmalign.outputs import check_output_dir
from mmalign.plugins import get_catalog

REPO = Path(__file__).resolve().parents[1]


def _fail_fsync_under(monkeypatch, folder: Path, err: int = errno.ENOSPC) -> None:
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder.resolve())):
            raise OSError(err, os.strerror(err))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_atomic_write_disk_full_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, [{"kept": True}])
    before = path.read_bytes()
    _fail_fsync_under(monkeypatch, tmp_path)
    with pytest.raises(OutputError, match=r"results\.json: cannot be written \(no space left on the device") as info:
        write_json_atomic(path, [{"kept": False}])
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def _unshare_works(tmp: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k none {tmp}"],
                           capture_output=True)
    return probe.returncode == 0


def test_atomic_write_on_a_full_small_filesystem_fails_cleanly(tmp_path):
    """A real 2 MiB tmpfs (in a user namespace): a 3 MiB write fails with ENOSPC, the previous file
    stays and no temp file is left; the CLI refuses a conversion that cannot fit before writing."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not _unshare_works(mnt):
        pytest.skip("cannot mount a size-limited tmpfs here (needs unshare and user namespaces)")
    src = tmp_path / "CUB_supporting_data.p"
    src.write_bytes(pickle.dumps({"train_seen": {"att": np.ones((1024, 1024), np.float32)}}))  # 4 MiB
    write = (f"from mmalign.atomic import write_bytes_atomic; from mmalign.errors import OutputError\n"
             f"try:\n    write_bytes_atomic('{mnt}/results.json', bytes(3 << 20))\n"
             f"except OutputError as exc:\n    print(exc)\n")
    script = textwrap.dedent(f"""
        set -e
        mount -t tmpfs -o size=2m none {mnt}
        printf 'previous' > {mnt}/results.json
        printf 'previous conversion' > {mnt}/sentences.safetensors
        {sys.executable} -c "{write}" > {tmp_path}/library
        set +e
        {sys.executable} -m mmalign.cli data convert-pickle {src} {mnt}/sentences.safetensors 2> {tmp_path}/err
        echo "exit=$?" > {tmp_path}/rc
        cat {mnt}/results.json > {tmp_path}/after_results
        cat {mnt}/sentences.safetensors > {tmp_path}/after
        ls -a {mnt} > {tmp_path}/listing
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(["unshare", "-Urm", "sh", "-c", script], check=True, env=env, timeout=120)
    assert "results.json: cannot be written (no space left on the device" in (tmp_path / "library").read_text()
    assert (tmp_path / "after_results").read_text() == "previous"
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "rc").read_text().strip() == "exit=2", err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "not enough room" in err
    assert (tmp_path / "after").read_text() == "previous conversion"
    assert sorted((tmp_path / "listing").read_text().split()) == [".", "..", "results.json", "sentences.safetensors"]


def test_train_rescues_the_model_when_the_checkpoint_cannot_be_written(tmp_path, monkeypatch, capsys):
    folder = malformed.write_dataset(tmp_path / "data")
    cfg = malformed.write_toml(tmp_path / "run.toml", malformed.run_config(folder))
    out, rescue = tmp_path / "out", tmp_path / "rescue"
    monkeypatch.setenv("MMALIGN_RESCUE_DIR", str(rescue))
    _fail_fsync_under(monkeypatch, out)  # the disk holding --out fills up during training
    capsys.readouterr()
    assert main(["train", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left" in err, err
    saved = [p for p in rescue.iterdir()]
    assert len(saved) == 1 and f"the trained model was saved to {saved[0]} instead" in err
    monkeypatch.undo()
    from mmalign import Aligner

    again = Aligner.load(saved[0])
    assert again.names == ["img", "att"] and json.loads((saved[0] / "config.json").read_text())["run"]
    assert not (out / "config.json").exists()


def test_eval_rescues_its_record_when_results_cannot_be_written(tmp_path, monkeypatch, capsys):
    ckpt = malformed.make_checkpoint(tmp_path / "base")
    (ckpt / "results.json").write_text(json.dumps(malformed.PRIOR_RESULTS))
    before = (ckpt / "results.json").read_bytes()
    monkeypatch.setenv("MMALIGN_RESCUE_DIR", str(tmp_path / "rescue"))
    _fail_fsync_under(monkeypatch, ckpt)
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--policy", "test"]) == 2
    err = capsys.readouterr().err.strip()
    (saved,) = list((tmp_path / "rescue").iterdir())
    assert f"the record of this evaluation was saved to {saved} instead" in err and len(err.splitlines()) == 1
    rescued = json.loads((saved / "results.json").read_text())
    assert len(rescued) == 1 and rescued[0]["setting"] == "gzsl" and rescued[0]["policy"] == "test"
    assert (ckpt / "results.json").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"cannot be written.*permission denied"):
            check_output_dir(ro / "out")
    finally:
        ro.chmod(0o755)


def test_output_dir_check_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(target, need_bytes=1024) == target
    assert list(tmp_path.iterdir()) == []


def _modalities(**hidden):
    catalog = get_catalog()
    return {"img": catalog.create("image_features", name="img", options={"hidden": hidden.get("img", (16, 12))}),
            "att": catalog.create("attributes", name="att", options={"hidden": hidden.get("att", (8, 10))})}


def test_memory_estimate_counts_the_parameters_of_the_built_model():
    from mmalign import Aligner

    dims = {"img": 20, "att": 6}
    aligner = Aligner(list(_modalities().values()), {"latent_size": 5})
    model = aligner.build(dims)
    counts = parameter_counts(aligner.modalities, dims, 5)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    # closed form for img: encoder 20->16 + two heads 16->5, decoder 5->12->20
    assert counts["img"] == (20 * 16 + 16) + 2 * (16 * 5 + 5) + (5 * 12 + 12) + (12 * 20 + 20)


def test_memory_estimate_names_the_key_to_change():
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"run\.toml: key 'latent_size' \(1000000000\)"):
        check_model_memory(_modalities(), {"img": 20, "att": 6}, 10**9, cpu, where="run.toml")
    with pytest.raises(ConfigError, match=r"modality 'att' key 'hidden' \(\[8, 100000000000\]\)"):
        check_model_memory(_modalities(att=(8, 10**11)), {"img": 20, "att": 6}, 5, cpu, where="run.toml")
    assert check_model_memory(_modalities(), {"img": 20, "att": 6}, 5, cpu) > 0


def test_validation_error_lists_at_most_three_problems():
    from mmalign.config import make_config

    with pytest.raises(ConfigError) as info:
        make_config({"latent_size": 0, "seed": -1, "device": "tpu", "reduction": "max", "recipe": "cada_vae",
                     "training": {"epochs": 0, "batch_size": 0}})
    message = str(info.value)
    assert "\n" not in message and message.count("key '") == 3 and message.endswith("(and 3 more)")


def test_aligner_refuses_sizes_no_machine_could_train_at_construction():
    from mmalign import Aligner

    with pytest.raises(ConfigError, match=r"config: key 'latent_size' \(10000000000\).*GiB"):
        Aligner(["image_features", "attributes"], {"latent_size": 10**10})
    with pytest.raises(ConfigError, match=r"modality 'img' key 'hidden'"):
        Aligner([{"kind": "image_features", "name": "img", "hidden": [2**50, 16]}, "attributes"])
