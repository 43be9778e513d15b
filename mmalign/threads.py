"""CPU threading: one OpenMP wait policy for the command line and the library.

torch's CPU kernels run on a libgomp thread pool. Between two kernels a pool thread waits for the
next one; by default libgomp spins about 300,000 times before it sleeps. On an idle CPU that
spinning saves the wake-up of a sleeping thread (the CLI ran about 20 % faster with
``OMP_WAIT_POLICY=ACTIVE`` than with ``PASSIVE``); on a CPU shared with other work the spinning
threads burn the cores the kernels need, and two threads ran 5-25x slower than with a passive wait
(``benchmarks/SPEED.md``, the library issue). The policy used here for both is a short spin:
``GOMP_SPINCOUNT=1000`` (`SHORT_SPIN`), a few microseconds before sleeping, which on a loaded
CPU measured the same as a passive wait (``benchmarks/threads_policy.py``).

libgomp reads the policy once, when torch loads, so `prepare_process` must run before
anything imports torch: ``mmalign``'s ``__init__`` and the CLI call it. A policy the user set
(``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) is kept. When torch was imported before ``mmalign`` with
no policy set, the pool keeps libgomp's long spin; `training_threads` then trains with one
thread (which never waits on the pool) while the machine's load shows other work on every core,
and says so once. ``--threads N`` limits torch's pool and, through threadpoolctl, the BLAS pools of
numpy/scipy (the ridge and CCA baselines), which ``torch.set_num_threads`` does not reach.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Iterator

from .errors import ConfigError

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
#: spins before a waiting pool thread sleeps (libgomp's default is 300000)
SHORT_SPIN = "1000"

#: how this process's OpenMP waits: "short" (mmalign set `SHORT_SPIN`), "user" (the user's
#: environment chose), "libgomp" (torch loaded first with nothing set: libgomp's long spin), or
#: None (not decided yet)
_policy: str | None = None
_warned = False


def prepare_process() -> str:
    """Set the short spin unless the user chose a policy; must run before torch is imported.
    Returns who decides this process's OpenMP wait (see `_policy`); idempotent."""
    global _policy
    if _policy is not None:
        return _policy
    if WAIT_POLICY in os.environ or SPIN_COUNT in os.environ:
        _policy = "user"
    elif "torch" in sys.modules:
        _policy = "libgomp"
    else:
        os.environ[SPIN_COUNT] = SHORT_SPIN
        _policy = "short"
    return _policy


def busy_cpu() -> bool:
    """Whether other work keeps every core busy (1-minute load average at least the core count)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


def training_threads(threads: int | None = None) -> int | None:
    """Threads for one library training call: ``threads`` when given; otherwise ``None`` (torch's
    default), except that a pool on libgomp's long spin (torch imported before ``mmalign`` with no
    policy set) trains with 1 thread while `busy_cpu`, with a one-time warning naming the fix."""
    global _warned
    if threads is not None or prepare_process() != "libgomp" or not busy_cpu():
        return threads
    if not _warned:
        _warned = True
        warnings.warn("torch was imported before mmalign, so OpenMP spins while it waits and every core is busy: "
                      "training with 1 thread. Import mmalign before torch, or set GOMP_SPINCOUNT=1000 "
                      "(or OMP_WAIT_POLICY=PASSIVE) in the environment, to use them all (docs/speed.md)",
                      stacklevel=3)
    return 1


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


@contextlib.contextmanager
def thread_count(num_threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(num_threads)`` for the duration, restored after (``None``: leave
    as is). The one place torch's thread count is changed and put back."""
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1, got {num_threads}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
