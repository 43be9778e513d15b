"""``mmalign plugins``: every plugin, its version, hooks and what it registers."""

from __future__ import annotations

import argparse
import json
import sys

from ..hooks import hookimpl


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("plugins", help="list loaded plugins, their hooks and what they register")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every plugin; a key registered twice is marked, not fatal, so this can diagnose it."""
    from ..plugins import get_catalog

    catalog = get_catalog(refresh=True, strict=False)
    rows = [
        {"name": p.name, "version": p.version, "builtin": p.builtin, "distribution": p.distribution,
         "hooks": p.hooks, "modalities": p.modalities, "losses": p.losses, "datasets": p.datasets,
         "conflicts": p.conflicts}
        for p in catalog.plugins.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        origin = "built-in" if r["builtin"] else f"entry point, distribution {r['distribution']}"
        print(f"{r['name']} {r['version']} ({origin})")
        print(f"  hooks: {', '.join(r['hooks']) or '-'}")
        print(f"  modalities: {', '.join(r['modalities']) or '-'}")
        if r["losses"]:
            print(f"  loss families: {', '.join(r['losses'])}")
        if r["datasets"]:
            print(f"  datasets: {', '.join(r['datasets'])}")
        for conflict in r["conflicts"]:
            print(f"  CONFLICT: {conflict}")
    if catalog.conflicts:
        print(f"{len(catalog.conflicts)} conflict(s); mmalign refuses to train or load until they are resolved",
              file=sys.stderr)
    return 0
