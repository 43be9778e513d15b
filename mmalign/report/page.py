"""The report's HTML page: one file, no script, no network; images are PNGs beside it."""

from __future__ import annotations

import datetime
import html
from dataclasses import dataclass, field
from typing import Sequence

#: The tag that marks a page as written by ``mmalign report`` (a later report may replace it).
GENERATOR = '<meta name="generator" content="mmalign report">'
STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:80%}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;font-size:90%}"""


@dataclass
class Picture:
    """One figure of the page: its PNG's file name (beside the page), title and caption."""

    file: str
    title: str
    caption: str


@dataclass
class Section:
    """One RUN_DIR (or the comparison): where it came from, its table, its pictures, notes."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    table: str = ""
    pictures: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def render_page(title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The page: a facts table (which data, which commit), then each section."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', GENERATOR, f"<title>{e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{e(title)}</h1>", _facts(facts)]
    for s in sections:
        parts.append(f"<h2>{e(s.title)}</h2>")
        parts.append(_facts(s.facts))
        parts += [f"<p><em>{e(n)}</em></p>" for n in s.notes]
        if s.table:
            parts.append(f"<pre>{e(s.table)}</pre>")
        for p in s.pictures:
            parts.append(f'<figure><img src="{e(p.file)}" alt="{e(p.title)}"><figcaption><strong>{e(p.title)}.</strong> '
                         f"{e(p.caption)}</figcaption></figure>")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p><small>Made by <code>mmalign report</code> on {e(stamp)}.</small></p></body></html>")
    return "\n".join(parts) + "\n"


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>"
