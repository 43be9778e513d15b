"""Where benchmark data lives, and how to get it.

Search order for the data root (the folder holding ``CUB/``, ``SUN/``, ...):

1. an explicit ``data_dir`` argument;
2. the environment variable ``MMALIGN_DATA_DIR``;
3. ``$XDG_CACHE_HOME/mmalign/xlsa17`` (``~/.cache/mmalign/xlsa17`` when unset).

`download_xlsa17` fetches the public xlsa17 release into that root (resumable, verified
when a checksum is known, unpacked so that ``<root>/CUB/res101.mat`` exists).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ..errors import DataError
from .matfile import sha256_file

ENV_VAR = "MMALIGN_DATA_DIR"
XLSA17_URL = "https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"
XLSA17_PAGE = (
    "https://www.mpi-inf.mpg.de/departments/computer-vision-and-machine-learning/research/"
    "zero-shot-learning/zero-shot-learning-the-good-the-bad-and-the-ugly"
)
#: FLO (Oxford Flowers) is not in xlsa17; it ships with Xian et al. CVPR 2018 (f-CLSWGAN).
FLO_URL = "https://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip"
#: CUB sent_splits.mat (Reed et al. sentence embeddings) as linked by the CADA-VAE authors.
SENTENCES_URL = "https://www.dropbox.com/sh/btoc495ytfbnbat/AAAaurkoKnnk0uV-swgF-gdSa?dl=0"
#: sha256 of archives whose checksum is known (none published for xlsa17.zip).
KNOWN_SHA256: dict[str, str] = {}
_DATASET_FILES = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<ds>[^/]+)/(res101|att_splits|sent_splits)\.mat$")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/mmalign`` (``~/.cache/mmalign`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mmalign"


def default_data_dir() -> Path:
    """The data root used when neither ``data_dir`` nor ``MMALIGN_DATA_DIR`` is given."""
    return cache_root() / "xlsa17"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir``, else ``$MMALIGN_DATA_DIR``, else `default_data_dir`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_data_dir()


def find_dataset_dir(
    name: str,
    data_dir: str | os.PathLike | None = None,
    required: Iterable[str] = ("res101.mat", "att_splits.mat"),
) -> Path:
    """The folder of dataset ``name`` under the data root, with every ``required`` file present.

    Accepts ``<root>/<name>``, ``<root>/data/<name>`` and ``<root>/xlsa17/data/<name>`` (the
    layout inside the release zip). Raises `DataError` listing the missing files, where
    they were looked for and how to get them.
    """
    root, required = resolve_data_dir(data_dir), list(required)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        first = (f"{name}: the data root {root} {what} ({root_source(data_dir)}), so {', '.join(required)} "
                 f"cannot be found; point it at the folder holding {name}/")
        raise DataError(missing_files_message(name, root / name, required, first=first))
    candidates = [root / name, root / "data" / name, root / "xlsa17" / "data" / name]
    for folder in candidates:
        if all((folder / f).is_file() for f in required):
            return folder
    folder = next((c for c in candidates if c.is_dir()), candidates[0])
    missing = [f for f in required if not (folder / f).is_file()]
    raise DataError(missing_files_message(name, folder, missing, root_source(data_dir)))


def root_source(data_dir: str | os.PathLike | None) -> str:
    """How the data root was chosen, for messages."""
    if data_dir is not None:
        return "data root from the data_dir argument"
    if os.environ.get(ENV_VAR):
        return f"data root from ${ENV_VAR}"
    return f"default data root; set ${ENV_VAR} or pass data_dir to use another folder"


def missing_files_message(name: str, folder: Path, missing: list[str], chosen_by: str = "", first: str = "") -> str:
    """A message naming the missing files, where they were expected and how to obtain them
    (``first`` replaces the opening sentence)."""
    lines = [first or f"{name}: missing file(s) {', '.join(missing)} in {folder}" + (f" ({chosen_by})" if chosen_by else "")]
    if name.upper() == "FLO":
        lines.append(f"FLO is not part of xlsa17: get {FLO_URL} (Xian et al., CVPR 2018) and use its data/FLO folder")
    elif set(missing) - {"sent_splits.mat"}:
        lines.append(
            'Get the public xlsa17 release of Xian et al., "Zero-Shot Learning - The Good, the Bad and the Ugly" '
            f"(CVPR 2017 / TPAMI 2018) from {XLSA17_PAGE} (direct link {XLSA17_URL}, about 880 MB),"
            " or run `mmalign data download xlsa17` (which resumes and verifies the download)."
        )
    if "sent_splits.mat" in missing:
        lines.append(
            "sent_splits.mat (CUB sentence embeddings of Reed et al.) is not in xlsa17; "
            f"it is in the CADA-VAE data folder {SENTENCES_URL}"
        )
    lines.append(f"Unpack so that {folder.parent / name / missing[0]} exists")
    return ". ".join(line.rstrip(".") for line in lines) + "."


def download_xlsa17(
    dest: str | os.PathLike | None = None,
    url: str = XLSA17_URL,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 15.0,
    keep_archive: bool = False,
) -> Path:
    """Download and unpack an xlsa17-style zip so that ``<dest>/<DATASET>/res101.mat`` exists.

    Args:
        dest: data root (default: `resolve_data_dir`).
        url: archive URL (default: the MPI-INF xlsa17 release).
        sha256: expected checksum of the archive (default: `KNOWN_SHA256` entry, if any).
        progress: show a tqdm progress bar.
        timeout: socket timeout in seconds; an unreachable host fails fast with a `DataError`.
        keep_archive: keep the zip after unpacking.

    A partial download (``<archive>.part``) is resumed with an HTTP Range request. Returns ``dest``.

    Checked before anything is fetched: ``url`` has a scheme (``https:``, ``http:``, ``ftp:``,
    ``file:``) and a host; ``dest`` is a folder (or can be made one) that can be written. An
    archive of the same name already in ``dest`` (an earlier download) is used; when it is not a
    valid zip or does not match ``sha256`` it is left as it is and the error says so: mmalign deletes
    only what it downloaded.
    """
    archive_name = check_download_url(url)
    dest = resolve_data_dir(dest)
    _check_dest(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / archive_name
    expected = sha256 or KNOWN_SHA256.get(url)
    earlier = archive.exists() or archive.is_symlink()
    if earlier and not archive.is_file():
        raise DataError(f"{archive}: exists and is not a file (the download would be saved there); move it away")
    if not earlier:
        _fetch(url, archive, timeout, progress, dest)
    if expected:
        found = sha256_file(archive)
        if found != expected.lower():
            if earlier:
                raise DataError(f"{archive}: sha256 {found} does not match the expected {expected}; it was there before "
                                "this command (left unchanged): move it away to download again")
            archive.unlink()
            raise DataError(
                f"{archive}: sha256 {found} does not match the expected {expected}; the download is "
                f"corrupt or a different file (deleted it; run again, or fetch {url} by hand into {dest})"
            )
    _unpack(archive, dest, delete_bad=not earlier)
    if not keep_archive:
        archive.unlink()
    return dest


#: URL schemes a download may use (urllib's openers).
DOWNLOAD_SCHEMES = ("https", "http", "ftp", "file")


def check_download_url(url: str) -> str:
    """The archive's file name in ``url`` (``xlsa17.zip`` when the path names none);
    `DataError` when ``url`` has no known scheme or no host."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme.lower() not in DOWNLOAD_SCHEMES:
        what = f"scheme {parsed.scheme!r}" if parsed.scheme else "no scheme"
        raise DataError(f"--url {url}: {what}; expected a URL starting with "
                        f"{', '.join(s + '://' for s in DOWNLOAD_SCHEMES)}")
    if parsed.scheme.lower() != "file" and not parsed.netloc:
        raise DataError(f"--url {url}: no host; expected e.g. {XLSA17_URL}")
    return PurePosixPath(urllib.parse.unquote(parsed.path)).name or "xlsa17.zip"


def _check_dest(dest: Path) -> None:
    """The data root must be a folder (or creatable) and writable: refused before any download."""
    from ..outputs import check_output_dir

    check_output_dir(dest, "--data-dir")


def _fetch(url: str, archive: Path, timeout: float, progress: bool, dest: Path) -> None:
    from tqdm.auto import tqdm

    part = archive.with_name(archive.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "mmalign"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is complete
            part.replace(archive)
            return
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}. {_by_hand(url, dest)}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot reach {url} ({reason}). {_by_hand(url, dest)}") from None
    with response:
        if have and response.status != 206:  # server ignored the Range header: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        try:
            with open(part, "ab" if have else "wb") as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, disable=not progress, desc=archive.name
            ) as bar:
                while block := response.read(1 << 20):
                    fh.write(block)
                    bar.update(len(block))
        except (http.client.HTTPException, OSError) as exc:
            raise DataError(f"download of {url} stopped ({exc!r}); run again to resume from {part}") from None
    if total is not None and part.stat().st_size != total:
        raise DataError(f"download of {url} ended early ({part.stat().st_size} of {total} bytes); run again to resume")
    part.replace(archive)


def _by_hand(url: str, dest: Path) -> str:
    return (
        f'Download the xlsa17 release of Xian et al., "Zero-Shot Learning - The Good, the Bad and the Ugly", '
        f"by hand from {XLSA17_PAGE} ({url}) and unpack it so that {dest / 'CUB' / 'res101.mat'} exists "
        f"(or point ${ENV_VAR} at the folder holding CUB/, SUN/, ...)"
    )


def _unpack(archive: Path, dest: Path, delete_bad: bool = True) -> None:
    """Extract the dataset folders of ``archive`` into ``dest``, dropping any leading path; an
    invalid archive is deleted when ``delete_bad`` (it was downloaded by this command). A member
    whose place is taken by a folder (or by a file where a folder must go) is refused, naming it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            prefix = next((m.group("prefix") for n in zf.namelist() if (m := _DATASET_FILES.match(n))), None)
            if prefix is None:
                raise DataError(f"{archive}: holds no <DATASET>/res101.mat or att_splits.mat; not an xlsa17 archive")
            root = dest.resolve()
            members = []  # every member checked before the first is written
            for info in zf.infolist():
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                rel = PurePosixPath(info.filename[len(prefix):])
                target = (root / rel).resolve()
                if ".." in rel.parts or rel.is_absolute() or root not in target.parents:
                    raise DataError(f"{archive}: member {info.filename!r} would unpack outside {dest}; refusing")
                inside = [p for p in reversed(target.parents) if root in p.parents]  # folders to create
                blocked = next((p for p in inside if p.exists() and not p.is_dir()), None)
                if blocked is None and target.is_dir():
                    blocked = target
                if blocked is not None:
                    kind = "a folder" if blocked.is_dir() else "a file"
                    raise DataError(f"{archive}: cannot unpack {info.filename!r}: {blocked} is {kind} in the way; "
                                    "move it away and run again (the archive is kept for that)")
                members.append((info, target))
            for info, target in members:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, EOFError) as exc:
        if not delete_bad:
            raise DataError(f"{archive}: not a valid zip archive ({exc}); it was there before this command (left "
                            "unchanged): move it away to download again") from None
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: not a valid zip archive ({exc}); deleted it, run the download again") from None
