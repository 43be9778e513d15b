"""CPU threading for the command line.

On a small CPU shared with other work, OpenMP's default spin-waiting makes torch's threads burn
the cores they wait on: two threads ran 2-10x slower than one under load (benchmarks/SPEED.md). A
passive wait policy removes that, but libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads, so
:func:`prepare_process` must run before anything imports torch (the CLI calls it first). A value the
user set is kept. ``--threads N`` limits torch's pool and, through threadpoolctl, the BLAS pools of
numpy/scipy (the ridge and CCA baselines), which ``torch.set_num_threads`` does not reach.
"""

from __future__ import annotations

import os

from .errors import ConfigError

WAIT_POLICY = "OMP_WAIT_POLICY"


def prepare_process() -> None:
    """Set a passive OpenMP wait policy unless the user chose one (before torch is imported)."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def limit_threads(threads: int | None, flag: str = "--threads") -> None:
    """Use at most ``threads`` threads in torch and in every BLAS/OpenMP pool of the process
    (``None``: leave the defaults)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"{flag} must be at least 1, got {threads}")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # kept for the life of the process
