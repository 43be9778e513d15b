"""Output locations, checked before any compute, and a safe place for work that could not be saved.

`check_output_dir` is called by every command before it trains or evaluates: the folder
must be a folder (or creatable as one), writable, have room for what the command will write, and
none of the files the command writes may be one of its own inputs. Nothing is created by the
check: a probe file is made and removed at once, and a missing folder is only probed through its
nearest existing parent.

When a write fails after the work was done (the disk filled up during training), `rescue`
saves the result under a fallback folder (``$MMALIGN_RESCUE_DIR``, else
``~/.cache/mmalign/rescued``, else the system temp folder) and the error says where.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from .atomic import describe_os_error
from .errors import OutputError

T = TypeVar("T")

#: Bytes kept free beyond a command's own estimate (default 1 MiB): room for results and configs.
MARGIN_BYTES = 1 << 20


def _existing_ancestor(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".").resolve()


def free_bytes(folder: Path) -> int:
    """Bytes free for an unprivileged writer on the file system holding ``folder``."""
    return shutil.disk_usage(folder).free


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (same path after resolving links, or hard links)."""
    if Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(outputs: Iterable[Path], inputs: Iterable[Path], option: str) -> None:
    """Refuse when a file the command writes is one of the files it reads."""
    inputs = [Path(p) for p in inputs]
    for out in outputs:
        for source in inputs:
            if same_file(Path(out), source):
                raise OutputError(f"{option} {out}: is one of this command's inputs ({source}); "
                                  "writing there would destroy it; choose another output")


def check_output_dir(
    folder: str | Path,
    option: str = "--out",
    need_bytes: int = 0,
    writes: Iterable[str] = (),
    inputs: Iterable[Path] = (),
) -> Path:
    """Check that ``folder`` can receive the command's output; returns it as a Path.

    Args:
        folder: the output folder (need not exist yet).
        option: how the user named it, for the message (default ``--out``).
        need_bytes: what the command will write there (plus `MARGIN_BYTES`).
        writes: file names the command writes inside ``folder`` (checked against ``inputs``).
        inputs: files the command reads; none of them may be overwritten.
    Raises:
        OutputError: one line naming the folder and what is wrong.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder}: exists and is a file, not a folder; choose a folder")
    check_not_input([folder / name for name in writes] + [folder], inputs, option)
    anchor = _existing_ancestor(folder)
    if not anchor.is_dir():
        raise OutputError(f"{option} {folder}: cannot be created, {anchor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mmalign-write-probe.", dir=anchor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = "" if anchor == folder else f" (its nearest existing parent {anchor})"
        raise OutputError(f"{option} {folder}: cannot be written{where}: {describe_os_error(exc)}") from None
    check_room(folder, need_bytes, option)
    return folder


def check_room(folder: str | Path, need_bytes: int = 0, option: str = "--out") -> None:
    """The file system of ``folder`` (or of its nearest existing parent) must have ``need_bytes``
    plus `MARGIN_BYTES` free."""
    folder = Path(folder)
    free = free_bytes(_existing_ancestor(folder))
    if free < need_bytes + MARGIN_BYTES:
        raise OutputError(f"{option} {folder}: not enough room: only {_human(free)} is free, this run needs about "
                          f"{_human(need_bytes + MARGIN_BYTES)} there; free some space or choose another folder")


def check_output_file(path: str | Path, option: str, inputs: Iterable[Path] = (), need_bytes: int = 0) -> Path:
    """Check a single output file: not an input, not a folder, its folder writable with
    ``need_bytes`` free."""
    path = Path(path)
    check_not_input([path], inputs, option)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give the file to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{option} {path}: cannot be created, {path.parent} is a file, not a folder")
    check_output_dir(path.parent, option=option, need_bytes=need_bytes)
    return path


def rescue_roots() -> list[Path]:
    """Where `rescue` tries to save, in order."""
    roots = [Path(os.environ["MMALIGN_RESCUE_DIR"])] if os.environ.get("MMALIGN_RESCUE_DIR") else []
    return roots + [Path.home() / ".cache" / "mmalign" / "rescued", Path(tempfile.gettempdir()) / "mmalign-rescued"]


def rescue(name: str, save: Callable[[Path], T]) -> Path | None:
    """Call ``save(folder)`` on a fresh folder under the first usable rescue root; the folder, or
    None when no root could take it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for root in rescue_roots():
        folder = root / f"{name}-{stamp}-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=False)
            save(folder)
            return folder
        except (OSError, OutputError):
            shutil.rmtree(folder, ignore_errors=True)
    return None


def saved_or_rescued(target: Path, name: str, save: Callable[[Path], T], what: str) -> T:
    """``save(target)``; when that fails with an `OSError`, save to a rescue folder and
    raise `OutputError` saying where ``what`` is now."""
    try:
        return save(target)
    except OSError as exc:
        reason = str(exc) if isinstance(exc, OutputError) else f"{target}: {describe_os_error(exc)}"
        folder = rescue(name, save)
        if folder is None:
            raise OutputError(f"{reason}; {what} could not be saved anywhere else either") from None
        raise OutputError(f"{reason}; {what} was saved to {folder} instead") from None
