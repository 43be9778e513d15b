"""Sub-commands beyond ``plugins``: train, eval, benchmark, data."""

from __future__ import annotations

import argparse


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    return None
