"""What several commands share: thread and determinism flags applied to the process, tracking."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..threads import limit_threads


def apply_threads_flags(args: argparse.Namespace) -> None:
    """Act on ``--threads`` and ``--deterministic`` (see `add_threads_flags`)."""
    limit_threads(getattr(args, "threads", None))
    if getattr(args, "deterministic", False):
        from ..determinism import enable_determinism

        enable_determinism()


def trackers(args: argparse.Namespace, out: Path, params: dict) -> list:
    """The tracking callbacks ``--log`` asks for (checked before any training starts)."""
    from ..tracking import make_trackers

    return make_trackers(args.log, out, tracking_uri=args.tracking_uri, params=params)
