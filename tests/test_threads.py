"""The CLI keeps a shared CPU from collapsing: a passive OpenMP wait before torch loads, and
--threads reaching the BLAS pools as well as torch's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mmalign.errors import ConfigError
from mmalign.threads import limit_threads


def run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          check=True, timeout=120).stdout.strip()


CLI = ("import sys; import mmalign.cli as cli; loaded = 'torch' in sys.modules; "
       "cli.main(['plugins', '--json']); import os; print('|', loaded, os.environ.get('OMP_WAIT_POLICY'))")


def test_threads_cli_sets_passive_wait_before_torch_loads():
    assert run_python(CLI).rsplit("|", 1)[1].split() == ["False", "PASSIVE"]


def test_threads_cli_keeps_a_wait_policy_the_user_chose():
    assert run_python(CLI, OMP_WAIT_POLICY="ACTIVE").rsplit("|", 1)[1].split() == ["False", "ACTIVE"]


def test_threads_limit_reaches_torch_and_the_blas_pools():
    code = ("import numpy, torch; from threadpoolctl import threadpool_info; from mmalign.threads import limit_threads; "
            "limit_threads(1); print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))")
    assert run_python(code) == "1 [1]"


def test_threads_limit_rejects_zero():
    with pytest.raises(ConfigError, match="--threads must be at least 1"):
        limit_threads(0)
