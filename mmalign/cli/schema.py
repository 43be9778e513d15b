"""``mmalign schema results``: the JSON Schema of the files mmalign writes."""

from __future__ import annotations

import argparse
import json

from ..hooks import hookimpl


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("schema", help="print the JSON Schema of a file mmalign writes")
    p.add_argument("what", choices=("results",), help="results: results.json of benchmark, eval and cub-text")
    p.set_defaults(func=cmd_schema)



def cmd_schema(args: argparse.Namespace) -> int:
    from ..records.schema import results_json_schema

    print(json.dumps(results_json_schema(), indent=2))
    return 0
