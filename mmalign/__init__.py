"""mmalign: aligned VAEs for any number of modalities (CADA-VAE, generalised and reproduced).

Public API:

```python
import mmalign
aligner = mmalign.Aligner(["image_features", "attributes"])
aligner.fit(data)                  # data: mmalign.AlignmentData
aligner.save("runs/x"); mmalign.Aligner.load("runs/x")
```

The heavy names (everything that needs torch) load on first use, so that importing ``mmalign``
can set OpenMP's wait policy before torch starts (`mmalign.threads`: a short spin, unless the
environment sets one; import ``mmalign`` before ``torch`` for it to apply).
"""

from importlib import import_module
from importlib.util import find_spec
from typing import Any

__version__ = "0.1.0"

from .errors import CheckpointError, ConfigError, DataError, MmalignError, PluginError, TrainingError
from .hooks import hookimpl
from .threads import prepare_process

prepare_process()  # before torch loads: libgomp reads its wait policy once

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "AlignmentData": ".data", "Modality": ".modality", "FeatureModality": ".modality",
    "AlignerConfig": ".config", "TrainConfig": ".config", "AlignedVAE": ".model", "LossWeights": ".schedule",
    "LossSchedule": ".schedule", "LossTerm": ".terms", "Aligner": ".aligner", "get_catalog": ".plugins",
    "evaluate": ".protocols.evaluate", "Callback": ".training",
}

__all__ = [
    "__version__", "hookimpl", "MmalignError", "ConfigError", "DataError", "PluginError", "CheckpointError",
    "TrainingError", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
        return import_module(f".{name}", __name__)  # a submodule: ``mmalign.plugins.add_plugin`` works unimported
    raise AttributeError(f"module 'mmalign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
