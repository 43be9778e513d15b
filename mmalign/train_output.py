"""``mmalign train --out``: what an output folder may already hold, and how to go on after an interrupt.

A folder with a finished checkpoint or an unfinished run's training state is refused unless
``--force`` (train again; the stale ``results.json`` goes too) or ``--resume`` (continue the state).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checkpoint import CONFIG
from .errors import ConfigError
from .resume import STATE_FILE


def prepare_output(out: Path, resume: bool, force: bool) -> bool:
    """Check ``train --out`` before any work; returns whether a training state will be resumed.

    A finished checkpoint or a run's training state in ``out`` is refused unless ``force`` (which
    removes them and the stale ``results.json``) or ``resume`` (which continues the state)."""
    state, finished = out / STATE_FILE, (out / CONFIG).is_file()
    if resume and force:
        raise ConfigError("--resume continues the run in --out and --force starts it over; pass one of them")
    if resume:
        if state.is_file():
            return True
        if finished:
            raise ConfigError(f"--resume: {out} holds a finished checkpoint and no training state (it is removed "
                              "when a run ends, unless --keep-state); pass --force to train it again")
        print(f"mmalign: --resume: no training state in {out}; starting from scratch", file=sys.stderr, flush=True)
        return False
    if (finished or state.is_file()) and not force:
        what = "a checkpoint" if finished else "the training state of an unfinished run"
        raise ConfigError(f"--out {out} already holds {what}; pass --resume to continue it or --force to overwrite it")
    if force:
        for stale in (state, out / "results.json"):
            stale.unlink(missing_ok=True)
    return False


def resume_hint(args: argparse.Namespace) -> str:
    """What the interrupt message of ``mmalign train`` tells the user to run next."""
    if args.checkpoint_every is None:
        return "nothing was saved (with --checkpoint-every N a run can be continued with --resume)"
    return (f"the training state saved every {args.checkpoint_every} epoch(s) in {args.out} continues with: "
            f"mmalign train {args.config} --out {args.out} --checkpoint-every {args.checkpoint_every} --resume")
