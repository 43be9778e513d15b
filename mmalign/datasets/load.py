"""Load a named benchmark (checked against its card) or a custom folder in the xlsa17 layout."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data import AlignmentData
from ..errors import DataError, PluginError
from .cards import CardReport, DatasetCard, check_data, check_card, did_you_mean, list_cards, load_card
from .locate import find_dataset_dir, resolve_data_dir
from .xlsa17 import ATT_SPLITS, RES101, ClassLevelData, read_class_level, read_xlsa17


def load_dataset(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    skip_card_check: bool = False,
    require_files: Iterable[str] = (),
    use_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> AlignmentData:
    """Load a benchmark by card name (``"CUB"``, ``"SUN"``, ...) or any xlsa17-layout folder.

    Args:
        name: a card name (case-insensitive), or a dataset folder (loaded with no card): a
            `Path`, or a string containing a path separator (``"./CUB"``).
        data_dir: data root holding ``<NAME>/``; default ``$MMALIGN_DATA_DIR`` or the user cache.
        skip_card_check: load even if the files disagree with the card; the mismatches become
            strings in ``data.meta["warnings"]`` instead of a `DataError`.
        require_files: further files that must exist (e.g. ``("sent_splits.mat",)`` for sentences).
        use_cache: read ``res101.mat`` through the safetensors cache.
        cache_dir: cache location (default: beside ``res101.mat`` if writable, else the user cache).
    """
    card = _card_or_none(name)
    if card is None and isinstance(name, str) and "/" not in name:
        from ..plugins import get_catalog

        entry = get_catalog().dataset(name)
        if entry is not None:
            return load_plugin_dataset(entry, data_dir, skip_card_check=skip_card_check)
    if card is None:
        folder = Path(name)
        if not folder.is_dir():
            raise DataError(f"unknown dataset {str(name)!r}{did_you_mean(str(name), list_cards())}: not a card name "
                            f"({list_cards()}) and not a folder")
        _require(folder, [RES101, ATT_SPLITS, *require_files])
        return read_xlsa17(folder, use_cache=use_cache, cache_dir=cache_dir)
    folder = find_dataset_dir(card.name, data_dir, required=[RES101, ATT_SPLITS, *require_files])
    data = read_xlsa17(folder, card.name, use_cache=use_cache, cache_dir=cache_dir)
    _apply(check_card(folder, card, data), data.meta, skip_card_check)
    return data


def load_plugin_dataset(entry: Any, data_dir: str | os.PathLike | None = None, *,
                        skip_card_check: bool = False) -> AlignmentData:
    """A data set registered by a plugin: ``entry.reader(data_root)``, validated, and checked
    against the plugin's card when it gave one (class counts; ``skip_card_check`` turns
    mismatches into warnings)."""
    from .cards import plugin_card

    data = entry.reader(resolve_data_dir(data_dir))
    if not isinstance(data, AlignmentData):
        raise PluginError(f"plugin {entry.plugin!r}: the reader of data set {entry.name!r} returned "
                          f"{type(data).__name__}, expected an AlignmentData")
    data.validate()
    data.meta.setdefault("plugin", entry.plugin)
    card = plugin_card(entry.name)
    if card is not None:
        report = CardReport(card.name)
        if data.num_classes != card.num_classes:
            report.errors.append(f"{data.name}: num_classes: expected {card.num_classes}, found {data.num_classes} "
                                 f"(card {card.name})")
        check_data(card, data, report)
        _apply(report, data.meta, skip_card_check)
    return data


def load_class_level(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    skip_card_check: bool = False,
) -> ClassLevelData:
    """Class-level data only (``att_splits.mat`` + ``sent_splits.mat``), no image features.

    Checked against the card's class-level parts (class count, embedding dims, split sizes,
    checksums); ``res101.mat`` is neither needed nor read.
    """
    card = _card_or_none(name)
    if card is None:
        folder = Path(name)
        _require(folder, [ATT_SPLITS])
        return read_class_level(folder)
    folder = find_dataset_dir(card.name, data_dir, required=[ATT_SPLITS])
    cl = read_class_level(folder, card.name)
    class_card = card.model_copy(update={"files": {k: v for k, v in card.files.items() if k != RES101}})
    _apply(check_card(folder, class_card), cl.meta, skip_card_check)
    return cl


def _card_or_none(name: str | os.PathLike) -> DatasetCard | None:
    """The card for a bare card name; None for a path (a ``Path`` or a string with a separator)."""
    if isinstance(name, str) and "/" not in name and os.sep not in name and name.upper() in {c.upper() for c in list_cards()}:
        return load_card(name)
    return None


def _require(folder: Path, files: list[str]) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: missing file(s) {', '.join(missing)} (xlsa17 layout: res101.mat, att_splits.mat)")


def _apply(report: CardReport, meta: dict, skip: bool) -> None:
    if report.errors and not skip:
        raise DataError(
            f"{report.card}: the files do not match the dataset card ({len(report.errors)} mismatch(es)):\n  - "
            + "\n  - ".join(report.errors)
            + "\nPass skip_card_check=True (CLI: --skip-card-check) to load anyway."
        )
    warnings = list(report.warnings) + (list(report.errors) if skip else [])
    meta["warnings"] = list(meta.get("warnings", [])) + warnings
    meta["card"] = report.card
