"""Evaluation protocols: GZSL, ZSL and few-shot on aligned latents (CADA-VAE's latent classifier).

Entry points:

```python
from mmalign.protocols import evaluate, validation_view
result = evaluate(aligner, data, setting="gzsl", shots=0, seed=0)          # policy "fixed"
view = validation_view(data, seed=0)                                      # policy "val":
selector.fit(view, seed=0)                                                #   a VAE on train classes
result = evaluate(aligner, data, policy="val", selection_aligner=selector, selection_data=view, seed=0)
```
"""

from .classifier import ClassifierHparams, predict, train_classifier, train_resident, train_reference
from .evaluate import evaluate
from .fewshot import FewShotSplit, fewshot_split
from .latents import LatentSet, repeat_to_count, training_latents
from .metrics import harmonic_mean, per_class_accuracy
from .policies import (POLICIES, EpochPolicy, FixedEpochs, ManualEpochs, TestEpochs, ValidationEpochs, fixed_epochs,
                       make_policy)
from .validation import EpochSelection, select_epochs, validation_view
from .protocol import ProtocolTask, build_task, run_classifier

__all__ = [
    "ClassifierHparams", "EpochPolicy", "EpochSelection", "FewShotSplit", "FixedEpochs", "LatentSet", "ManualEpochs",
    "POLICIES", "ProtocolTask", "TestEpochs", "ValidationEpochs", "make_policy",
    "build_task", "evaluate", "fewshot_split", "fixed_epochs", "harmonic_mean", "per_class_accuracy",
    "predict", "repeat_to_count", "run_classifier", "select_epochs", "train_classifier", "train_resident",
    "train_reference", "training_latents", "validation_view",
]
