"""Sweeps: many benchmark runs from one file (`.spec`), run by workers with one writer of the
results (`.execute`); ``mmalign sweep SWEEP.toml --out DIR``."""

from .execute import InProcess, LocalPool, RayTasks, SweepReport, check_sweep_output, free_workers, run_one, run_sweep
from .spec import RUN_KEYS, Sweep, SweepRun, build_request, parse_sweep, read_sweep

__all__ = ["InProcess", "LocalPool", "RUN_KEYS", "RayTasks", "Sweep", "SweepReport", "SweepRun", "build_request",
           "check_sweep_output", "free_workers", "parse_sweep", "read_sweep", "run_one", "run_sweep"]
