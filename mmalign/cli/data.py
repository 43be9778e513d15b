"""``mmalign data download`` and ``mmalign data convert-pickle``: get benchmark data."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import ConfigError
from ..hooks import hookimpl


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch benchmark data")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    d = data_sub.add_parser("download", help="download, verify and unpack a public release")
    d.add_argument("release", choices=("xlsa17",))
    d.add_argument("--data-dir", help="where to unpack (default: $MMALIGN_DATA_DIR, then the cache)")
    d.add_argument("--url", help="override the download address")
    d.add_argument("--sha256", help="expected sha256 of the archive; a download that differs is deleted and refused")
    d.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    d.set_defaults(func=cmd_data_download)
    d = data_sub.add_parser("convert-pickle", help="convert a numpy pickle (e.g. CUB_supporting_data.p) to "
                            "safetensors once, loading nothing but arrays and plain containers")
    d.add_argument("src", help="the pickle file")
    d.add_argument("dst", help="the .safetensors file to write (atomically)")
    d.set_defaults(func=cmd_data_convert_pickle)


def cmd_data_convert_pickle(args: argparse.Namespace) -> int:
    from ..safe_unpickle import convert_pickle_to_safetensors

    from ..outputs import check_output_file

    src = Path(args.src)
    check_output_file(args.dst, "convert-pickle destination", inputs=[src],
                      need_bytes=src.stat().st_size if src.is_file() else 0)  # arrays take about the pickle's size
    keys = convert_pickle_to_safetensors(args.src, args.dst)
    print(f"wrote {len(keys)} tensor(s) to {args.dst}: {', '.join(keys)}")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from ..datasets.locate import download_xlsa17, resolve_data_dir

    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise ConfigError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    dest = resolve_data_dir(args.data_dir)
    kwargs = {"url": args.url} if args.url else {}
    path = download_xlsa17(dest, sha256=args.sha256, progress=not args.no_progress, **kwargs)
    print(f"xlsa17 is ready in {path}", file=sys.stderr)
    return 0
