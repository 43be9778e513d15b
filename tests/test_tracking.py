"""``--log tensorboard`` / ``--log mlflow``: training callbacks read back with the libraries' own readers."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from mmalign.cli import main
from mmalign.config import TrainConfig
from mmalign.errors import ConfigError
from mmalign.tracking import MlflowTracker, TensorBoardTracker, make_trackers


@dataclass
class Log:
    """An EpochLog as the training loop hands it to callbacks."""

    epoch: int
    terms: dict
    seconds: float
    weights: dict = field(default_factory=dict)


def train_with(tracker, epochs: int = 3) -> list[Log]:
    """Drive a tracker exactly as the training loop does: begin, one call per epoch, end."""
    state = SimpleNamespace(epoch=0, config=TrainConfig(epochs=epochs), histories=[[]])
    tracker.on_train_begin(state)
    logs = []
    for e in range(epochs):
        log = Log(e, {"loss": 10.0 - e, "recon/img": 6.0 - e, "align/att|img": 1.5}, 0.25,
                  {"kl": 0.1 * e, "cross": 0.0, "align": 2.0 * e})
        logs.append(log)
        state.epoch = e
        state.histories[0].append(log)
        tracker.on_epoch_end(state, [log])
    tracker.on_train_end(state)
    return logs


def test_tracking_tensorboard_writes_terms_weights_metrics_and_config(tmp_path):
    pytest.importorskip("tensorboard", reason="mmalign[tensorboard] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = TensorBoardTracker(tmp_path, params={"aligner": {"seed": 3, "latent_size": 64}})
    train_with(tracker)
    tracker.log_metrics({"H": 52.5})
    tracker.log_checkpoint(tmp_path / "ckpt")
    events = EventAccumulator(str(tmp_path / "tensorboard" / "run0"), size_guidance={"tensors": 0}).Reload()
    assert [(s.step, s.value) for s in events.Scalars("loss/loss")] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    assert [s.value for s in events.Scalars("weight/align")] == [0.0, 2.0, 4.0]
    assert [s.value for s in events.Scalars("result/H")] == [52.5]
    texts = {tag: events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}
    config = next(v for k, v in texts.items() if k.startswith("config"))
    assert "aligner.seed = 3" in config and "training.epochs = 3" in config
    assert str((tmp_path / "ckpt").resolve()) in next(v for k, v in texts.items() if k.startswith("checkpoint"))
    train_with(tracker, epochs=1)  # a second training run (the next seed) gets its own folder
    assert (tmp_path / "tensorboard" / "run1").is_dir()


def test_tracking_mlflow_logs_to_a_local_store_in_the_output_folder(tmp_path):
    pytest.importorskip("mlflow", reason="mmalign[mlflow] is not installed")
    from mlflow.tracking import MlflowClient

    tracker = MlflowTracker(tmp_path, params={"aligner": {"seed": 3}})
    train_with(tracker)
    tracker.log_metrics({"H": 52.5})
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    tracker.log_checkpoint(ckpt)
    assert (tmp_path / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["aligner.seed"] == "3" and run.data.params["training.epochs"] == "3"
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss/recon/img")] == [
        (0, 6.0), (1, 5.0), (2, 4.0)]
    assert len(client.get_metric_history(tracker.run_id, "loss/align/att_and_img")) == 3
    assert [m.value for m in client.get_metric_history(tracker.run_id, "weight/kl")] == pytest.approx([0.0, 0.1, 0.2])
    assert run.data.metrics["result/H"] == 52.5
    assert [f.path for f in client.list_artifacts(tracker.run_id, "checkpoint")] == ["checkpoint/config.json"]
    assert (tmp_path / "mlartifacts").is_dir()


def test_tracking_names_the_extra_to_install_when_its_package_is_missing(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tracking(name, *args, **kwargs):
        if name.startswith(("torch.utils.tensorboard", "tensorboard", "mlflow")):
            raise ImportError(f"No module named {name!r}", name=name.split(".")[0])
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tracking)
    for kind in ("tensorboard", "mlflow"):
        with pytest.raises(ConfigError, match=rf"--log {kind} needs .*pip install 'mmalign\[{kind}\]'"):
            make_trackers([kind], tmp_path)


def test_tracking_uri_without_mlflow_is_refused_at_the_cli(tmp_path, capsys):
    (tmp_path / "cfg.toml").write_text('[data]\ndataset = "CUB"\nsynthetic = true\n')
    code = main(["train", str(tmp_path / "cfg.toml"), "--out", str(tmp_path / "out"), "--tracking-uri", "x"])
    assert code == 2 and "--tracking-uri is for --log mlflow" in capsys.readouterr().err


def test_tracking_train_cli_logs_every_epoch_with_its_weights(tmp_path):
    pytest.importorskip("tensorboard", reason="mmalign[tensorboard] is not installed")
    pytest.importorskip("mlflow", reason="mmalign[mlflow] is not installed")
    import malformed
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = malformed.write_dataset(tmp_path / "data")
    toml = malformed.write_toml(tmp_path / "cfg.toml", malformed.run_config(folder, training={"epochs": 3, "batch_size": 16}))
    out = tmp_path / "run"
    assert main(["train", str(toml), "--out", str(out), "--no-progress", "--log", "tensorboard", "--log", "mlflow"]) == 0
    events = EventAccumulator(str(out / "tensorboard" / "run0")).Reload()
    assert [s.step for s in events.Scalars("loss/loss")] == [0, 1, 2]
    assert {"weight/kl", "weight/cross", "weight/align"} <= set(events.Tags()["scalars"])
    history = json_history(out)
    assert [s.value for s in events.Scalars("weight/kl")] == pytest.approx([e["weights"]["kl"] for e in history])
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mmalign").experiment_id])
    assert run.data.params["aligner.training.epochs"] == "3" and "result/final_loss" in run.data.metrics
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss/loss")] == pytest.approx(
        [e["terms"]["loss"] for e in history])
    assert "checkpoint/model.safetensors" in [f.path for f in client.list_artifacts(run.info.run_id, "checkpoint")]


def json_history(out):
    import json

    return json.loads((out / "history.json").read_text())["epochs"]
