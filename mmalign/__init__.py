"""mmalign: aligned VAEs for any number of modalities (CADA-VAE, generalised and reproduced).

Public API::

    import mmalign
    aligner = mmalign.Aligner(["image_features", "attributes"])
    aligner.fit(data)                  # data: mmalign.AlignmentData
    aligner.save("runs/x"); mmalign.Aligner.load("runs/x")
"""

__version__ = "0.1.0"

from .hooks import hookimpl
from .errors import CheckpointError, ConfigError, DataError, MmalignError, PluginError, TrainingError
from .data import AlignmentData
from .modality import FeatureModality, Modality
from .config import AlignerConfig, TrainConfig
from .engine import AlignedVAE, LossWeights
from .aligner import Aligner
from .plugins import get_catalog
from .protocols.evaluate import evaluate

__all__ = [
    "__version__", "hookimpl", "MmalignError", "ConfigError", "DataError", "PluginError", "CheckpointError",
    "TrainingError", "AlignmentData", "Modality", "FeatureModality", "AlignerConfig", "TrainConfig",
    "AlignedVAE", "LossWeights", "Aligner", "get_catalog", "evaluate",
]
