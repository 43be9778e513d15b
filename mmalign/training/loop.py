"""The training loop, written once: epochs of steps, the rest callbacks.

An epoch is ``ceil(N_train / batch_size)`` steps; every step draws ``batch_size`` distinct training
samples (a fresh random permutation per step, as the reference code does) and, for per-class
modalities, the rows of the samples' classes. How a step executes (plain, captured as a CUDA graph,
S runs stacked, bf16, compiled) is the `Step` the loop is handed;
progress, history, the finite check, checkpoints and logging are callbacks
(`mmalign.training.callbacks`). The loss weights of each epoch come from one
`LossSchedule`.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch

from ..schedule import LossSchedule
from .callbacks import Callback, FiniteCheck, History, LoopState, epoch_logs
from .steps import Step


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """``ceil(N / batch_size)``, as the reference code counts an epoch."""
    return math.ceil(num_samples / batch_size)


class Trainer:
    """Runs ``step`` for epochs ``start_epoch .. config.epochs - 1`` and returns every run's history.

    ``generators`` holds one generator per run (each run draws its batches and noise from its own);
    ``callbacks`` run after the built-in `FiniteCheck` and `History`.
    """

    def __init__(self, step: Step, config, schedule: LossSchedule, term_names: list[str],
                 generators: Sequence[torch.Generator], num_samples: int, start_epoch: int = 0,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.step, self.config, self.schedule = step, config, schedule
        self.term_names, self.generators = term_names, list(generators)
        self.steps = steps_per_epoch(num_samples, config.batch_size)
        self.start_epoch = start_epoch
        self.callbacks: list[Callback] = [FiniteCheck(), History(), *callbacks]

    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def run(self) -> list[list]:
        state = LoopState(self.config, self.term_names, runs=len(self.generators),
                          epoch=self.start_epoch, histories=[[] for _ in self.generators])
        log_every = self.config.log_every
        self._call("on_train_begin", state)
        try:
            for epoch in range(self.start_epoch, self.config.epochs):
                state.epoch = epoch
                started = time.perf_counter()
                weights = self.schedule.at(epoch)
                sums = self.step.start_epoch(weights)
                for i in range(self.steps):
                    self.step.step(self.generators)
                    if (i + 1) % log_every == 0 and i + 1 < self.steps:
                        self._call("on_log", state, sums, i)
                self._call("on_log", state, sums, self.steps - 1)
                logs = epoch_logs(self.term_names, sums, self.steps, epoch, weights, time.perf_counter() - started)
                self._call("on_epoch_end", state, logs)
        except BaseException as exc:
            state.error = exc
            raise
        finally:
            self._call("on_train_end", state)
        return state.histories
