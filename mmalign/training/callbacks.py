"""Training callbacks: everything the loop does besides stepping (in the manner of pythae's
``TrainingCallback``). The loop (`Trainer`) calls, in list order:

* ``on_train_begin(state)`` once;
* ``on_log(state, sums, step)`` every ``log_every`` steps and after an epoch's last step, with the
  running sums of the terms (``(S, T)``, loss last) still on the device: reading them is a host sync;
* ``on_epoch_end(state, logs)`` after every epoch, ``logs`` holding one `EpochLog` per run;
* ``on_train_end(state)`` once, also when training stopped with an error (``state.error`` is set).

``state`` is a `LoopState`. Write a callback by subclassing `Callback` and overriding
what you need; pass it as ``Aligner.fit(..., callbacks=[...])``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ..errors import TrainingError
from ..schedule import LossWeights


@dataclass
class EpochLog:
    """One epoch of one run: the mean of every term (``loss`` included), each loss family's
    weight in that epoch, and the epoch's wall seconds."""

    epoch: int
    terms: dict[str, float]
    weights: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class LoopState:
    """What callbacks see: the config, the epoch in progress, every run's history so far."""

    config: Any
    term_names: list[str]
    runs: int
    epoch: int = 0
    histories: list[list[EpochLog]] = field(default_factory=list)
    error: BaseException | None = None


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, state: LoopState) -> None:
        pass

    def on_log(self, state: LoopState, sums: torch.Tensor, step: int) -> None:
        pass

    def on_epoch_end(self, state: LoopState, logs: list[EpochLog]) -> None:
        pass

    def on_train_end(self, state: LoopState) -> None:
        pass


class History(Callback):
    """Appends each epoch's logs to ``state.histories`` (the loop's return value)."""

    def on_epoch_end(self, state: LoopState, logs: list[EpochLog]) -> None:
        for history, log in zip(state.histories, logs):
            history.append(log)


class FiniteCheck(Callback):
    """Stops training with `TrainingError` when a term becomes NaN or infinite (checked at
    every ``on_log``, so there is no host sync per step)."""

    def on_log(self, state: LoopState, sums: torch.Tensor, step: int) -> None:
        finite = torch.isfinite(sums)
        if bool(finite.all()):
            return
        bad = torch.nonzero(~finite.reshape(state.runs, -1)).tolist()
        terms = sorted({state.term_names[t] for _, t in bad})
        runs = sorted({s for s, _ in bad})
        which = f" for run(s) {runs}" if state.runs > 1 else ""
        raise TrainingError(
            f"loss became non-finite in epoch {state.epoch} by step {step}{which}: terms {terms}. "
            "Check the inputs for extreme values, or lower the learning rate"
        )


def weighted_summary(log: EpochLog) -> dict[str, str]:
    """Progress-bar summary: the total, and each family's weighted contribution (what the loss is
    made of: a family in its warm-up shows 0), with its current weight."""
    out = {"loss": f"{log.terms['loss']:.4g}"}
    families = dict.fromkeys(k.split("/", 1)[0] for k in log.terms if k != "loss")
    for family in families:
        raw = sum(v for k, v in log.terms.items() if k.startswith(family + "/"))
        weight = LossWeights(log.weights)[family]
        scheduled = family in log.weights  # a family without a schedule keeps its fixed weight: not shown
        out[family] = f"{raw * weight:.4g} (w {weight:.3g})" if scheduled else f"{raw * weight:.4g}"
    return out


class ProgressBar(Callback):
    """A tqdm bar over epochs showing the weighted loss terms of the first run."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train") -> None:
        self.total, self.initial, self.desc = total, initial, desc
        self.bar = None

    def on_train_begin(self, state: LoopState) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=self.initial, desc=self.desc, unit="epoch", leave=False)

    def on_epoch_end(self, state: LoopState, logs: list[EpochLog]) -> None:
        self.bar.set_postfix(weighted_summary(logs[0]), refresh=False)
        self.bar.update(1)

    def on_train_end(self, state: LoopState) -> None:
        if self.bar is not None:
            self.bar.close()


class LogLines(Callback):
    """One ``logging`` line per epoch on the ``mmalign.training`` logger (level INFO)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("mmalign.training")

    def on_epoch_end(self, state: LoopState, logs: list[EpochLog]) -> None:
        for run, log in enumerate(logs):
            parts = ", ".join(f"{k} {v}" for k, v in weighted_summary(log).items())
            self.logger.info("run %d epoch %d (%.1f s): %s", run, log.epoch, log.seconds, parts)


class Checkpointer(Callback):
    """Calls ``save(epochs_done, history)`` every ``every`` epochs and after the last one (the
    caller's function writes the full training state atomically; see `mmalign.resume`)."""

    def __init__(self, every: int, total: int, save: Callable[[int, list[EpochLog]], None],
                 prior: list[EpochLog] | None = None) -> None:
        self.every, self.total, self.save, self.prior = every, total, save, list(prior or [])

    def on_epoch_end(self, state: LoopState, logs: list[EpochLog]) -> None:
        done = state.epoch + 1
        if done % self.every == 0 or done == self.total:
            self.save(done, self.prior + state.histories[0])


def epoch_logs(names: list[str], sums: torch.Tensor, steps: int, epoch: int, weights: Mapping[str, float],
               seconds: float) -> list[EpochLog]:
    """One `EpochLog` per run from an epoch's ``(S, T)`` sums (the epoch's one host sync)."""
    means = (sums / steps).tolist()
    return [EpochLog(epoch, dict(zip(names, row)), dict(weights), seconds) for row in means]
