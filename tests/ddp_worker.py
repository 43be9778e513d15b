"""One rank of a data-parallel library run, launched by ``torchrun`` from tests/test_training_distributed.py.

``python ddp_worker.py OUT EPOCHS STOP``: joins the process group torchrun describes, trains the
tiny aligner of :func:`tiny_aligner` on :func:`malformed.small_data` with a checkpoint every epoch,
and stops (as if killed) after ``STOP`` epochs. Then trains one epoch with plain SGD
(:func:`sgd_epoch`: unlike Adam, its update is proportional to the gradient, so it shows whether the
all-reduced gradient is the full batch's) and rank 0 writes the weights to ``OUT/sgd.safetensors``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import malformed
import mmalign
from mmalign.training import Callback, train
from mmalign.training.distributed import init_from_env, shutdown

PER_CLASS = 20


class Stopped(Exception):
    pass


class StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, state, logs) -> None:
        if state.epoch + 1 >= self.epochs:
            raise Stopped


def tiny_aligner(epochs: int) -> mmalign.Aligner:
    training = {**malformed.TINY_ALIGNER["training"], "epochs": epochs, "batch_size": 15}
    return mmalign.Aligner(malformed.MODALITIES, {**malformed.TINY_ALIGNER, "training": training, "device": "cpu"})


def data() -> mmalign.AlignmentData:
    return malformed.small_data(per_class=PER_CLASS)


def sgd_epoch(distributed=None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Weights before and after one epoch of SGD (lr 1e-3) on the tiny aligner."""
    aligner = tiny_aligner(1)
    tensors = aligner.training_tensors(data())
    model = aligner.build(aligner.dims)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(aligner.config.seed)
    train(model, tensors, aligner.config.training, generator, torch.optim.SGD(model.parameters(), lr=1e-3),
          progress=False, distributed=distributed)
    return before, {k: v.clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    out, epochs, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    group = init_from_env("cpu")
    assert group is not None and group.world_size == 2, group
    try:
        tiny_aligner(epochs).fit(data(), progress=False, checkpoint_dir=out, checkpoint_every=1,
                                 callbacks=[StopAfter(stop)])
    except Stopped:
        pass
    try:
        _, after = sgd_epoch(group)
        if group.primary:
            save_file(after, str(Path(out) / "sgd.safetensors"))
    finally:
        shutdown()
