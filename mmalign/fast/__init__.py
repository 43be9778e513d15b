"""Fast training paths. :mod:`mmalign.training` stays the reference; these produce the same runs
(same random stream, same math up to floating-point rounding) faster:

* :func:`train_fast`: the eager loop with a fused optimiser, oneDNN fp32 products on the CPU,
  optional bf16 autocast, optional ``torch.compile`` and thread control;
* :func:`train_seeds`: several seeds trained at once as one batched model (stacked weights);
* :func:`fit_fast` / :func:`fit_seeds`: :meth:`mmalign.Aligner.fit` on these paths, for one seed
  or several at once.

Measured speed-ups and what limits them: ``benchmarks/SPEED.md``.
"""

from .fit import fit_fast, fit_seeds
from .forward import batched_terms, noisy_terms
from .optim import make_fused_optimizer
from .seeds import SeedRun, train_seeds
from .train import train_fast

__all__ = [
    "SeedRun", "batched_terms", "fit_fast", "fit_seeds", "make_fused_optimizer", "noisy_terms",
    "train_fast", "train_seeds",
]
