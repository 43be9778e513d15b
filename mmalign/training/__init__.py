"""Training: one loop (:mod:`.loop`), its callbacks (:mod:`.callbacks`), the step strategies it is
handed (:mod:`.steps`, :mod:`.graphs`, :mod:`.stacked`, :mod:`.distributed`) and the engines that put them together
(:mod:`.engines`: :func:`train`, :func:`train_seeds`)."""

from .callbacks import Callback, Checkpointer, EpochLog, FiniteCheck, History, LogLines, LoopState, ProgressBar
from .engines import new_optimizer, train, train_seeds
from .loop import Trainer
from .tensors import TrainingTensors

__all__ = [
    "Callback", "Checkpointer", "EpochLog", "FiniteCheck", "History", "LogLines", "LoopState", "ProgressBar",
    "Trainer", "TrainingTensors", "new_optimizer", "train", "train_seeds",
]
