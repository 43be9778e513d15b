"""Training: one loop (`.loop`), its callbacks (`.callbacks`), the step strategies it is
handed (`.steps`, `.graphs`, `.stacked`, `.distributed`) and the engines that put them together
(`.engines`: `train`, `train_seeds`)."""

from .callbacks import Callback, Checkpointer, EpochLog, FiniteCheck, History, LogLines, LoopState, ProgressBar
from .engines import new_optimizer, train, train_seeds
from .loop import Trainer
from .tensors import TrainingTensors

__all__ = [
    "Callback", "Checkpointer", "EpochLog", "FiniteCheck", "History", "LogLines", "LoopState", "ProgressBar",
    "Trainer", "TrainingTensors", "new_optimizer", "train", "train_seeds",
]
