"""The CLI and the library keep a shared CPU from collapsing: a short OpenMP spin set before torch
loads (by ``import mmalign``), one thread when torch came first and every core is busy, and
--threads reaching the BLAS pools as well as torch's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mmalign
from mmalign import threads
from mmalign.errors import ConfigError
from mmalign.threads import limit_threads


def run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          check=True, timeout=120).stdout.strip()


CLI = ("import sys; import mmalign.cli as cli; loaded = 'torch' in sys.modules; "
       "cli.main(['plugins', '--json']); import os; "
       "print('|', loaded, os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
LIBRARY = ("import sys, os; import mmalign; loaded = 'torch' in sys.modules; import torch; "
           "print('|', loaded, os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def test_threads_cli_sets_a_short_spin_before_torch_loads():
    assert run_python(CLI).rsplit("|", 1)[1].split() == ["False", "None", "1000"]


def test_threads_library_import_sets_the_same_short_spin_before_torch_loads():
    assert run_python(LIBRARY).rsplit("|", 1)[1].split() == ["False", "None", "1000"]


def test_threads_cli_and_library_keep_a_wait_policy_the_user_chose():
    assert run_python(CLI, OMP_WAIT_POLICY="ACTIVE").rsplit("|", 1)[1].split() == ["False", "ACTIVE", "None"]
    assert run_python(LIBRARY, GOMP_SPINCOUNT="50").rsplit("|", 1)[1].split() == ["False", "None", "50"]


@pytest.fixture
def torch_came_first(monkeypatch):
    """This process as if torch had been imported before mmalign with no policy set."""
    monkeypatch.setattr(threads, "_policy", "libgomp")
    monkeypatch.setattr(threads, "_warned", False)


@pytest.mark.filterwarnings("ignore:training for")
def test_threads_fit_uses_one_thread_when_torch_came_first_and_the_cpu_is_busy(torch_came_first, monkeypatch):
    import numpy as np
    import torch

    monkeypatch.setattr(threads, "busy_cpu", lambda: True)
    seen = []

    class Threads(mmalign.Callback):
        def on_epoch_end(self, state, logs):
            seen.append(torch.get_num_threads())

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    data = mmalign.AlignmentData(
        labels=labels, class_names=[f"c{i}" for i in range(4)],
        sample_features={"features": rng.random((40, 6)).astype(np.float32)},
        class_features={"attributes": rng.random((4, 3)).astype(np.float32)},
        splits={"trainval": np.arange(0, 40, 2), "test_seen": np.arange(1, 20, 2), "test_unseen": np.arange(21, 40, 2)},
        name="tiny").validate()
    aligner = mmalign.Aligner(["image_features", "attributes"],
                              config={"seed": 0, "device": "cpu", "latent_size": 2,
                                      "training": {"epochs": 1, "batch_size": 8}})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.warns(UserWarning, match="Import mmalign before torch"):
            aligner.fit(data, progress=False, callbacks=[Threads()])
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_fit_keeps_the_default_when_the_cpu_is_idle_or_mmalign_set_the_policy(torch_came_first, monkeypatch):
    monkeypatch.setattr(threads, "busy_cpu", lambda: False)
    assert threads.training_threads() is None
    monkeypatch.setattr(threads, "busy_cpu", lambda: True)
    assert threads.training_threads(3) == 3
    monkeypatch.setattr(threads, "_policy", "short")
    assert threads.training_threads() is None


def test_threads_limit_reaches_torch_and_the_blas_pools():
    code = ("import numpy, torch; from threadpoolctl import threadpool_info; from mmalign.threads import limit_threads; "
            "limit_threads(1); print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))")
    assert run_python(code) == "1 [1]"


def test_threads_limit_rejects_zero():
    with pytest.raises(ConfigError, match="--threads must be at least 1"):
        limit_threads(0)
