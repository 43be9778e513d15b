"""Dataset cards: what a named benchmark's files must look like (``registry/datasets/*.toml``).

A card lists the expected files and keys, class counts, image count, split sizes, embedding and
feature dimensions and (where known) sha256 checksums. `check_card` compares a data folder
(and optionally the loaded `AlignmentData`) with a card and reports every mismatch as
"which file, which key, expected vs found". Custom datasets need no card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..data import AlignmentData
from ..errors import ConfigError, DataError, PluginError, closest_name, did_you_mean  # noqa: F401 (re-exported)
from ..recipes import read_toml, registry_root, validate_record
from .matfile import mat_shapes, sha256_file
from .xlsa17 import SPLIT_KEYS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardFile(_Strict):
    """One expected file. ``sha256`` lists known-good copies; with ``strict_checksum`` a different
    checksum is an error, otherwise a warning (e.g. files re-saved by a mirror)."""

    keys: list[str]
    optional_keys: list[str] = []
    required: bool = True
    sha256: list[str] = []
    strict_checksum: bool = False
    note: str = ""


class ClassFeatureSpec(_Strict):
    """Where a class embedding comes from: ``key`` of ``file``, stored ``dim x num_classes``."""

    file: str
    key: str
    dim: int


class CardSplits(_Strict):
    """Number of images per split (``train``/``val`` only where the files hold them)."""

    trainval: int
    test_seen: int
    test_unseen: int
    train: int | None = None
    val: int | None = None


class DatasetCard(_Strict):
    """Expected shape of a named benchmark; see ``registry/datasets/CUB.toml`` for an example."""

    name: str
    title: str
    citation: str
    num_classes: int
    num_seen_classes: int
    num_unseen_classes: int
    num_train_classes: int | None = None
    num_val_classes: int | None = None
    num_images: int
    feature_dim: int = 2048
    has_class_names: bool = True
    class_features: dict[str, ClassFeatureSpec]
    splits: CardSplits
    files: dict[str, CardFile]

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetCard":
        if self.num_seen_classes + self.num_unseen_classes != self.num_classes:
            raise ValueError("num_seen_classes + num_unseen_classes must equal num_classes")
        if self.splits.trainval + self.splits.test_seen + self.splits.test_unseen > self.num_images:
            raise ValueError("trainval + test_seen + test_unseen exceeds num_images")
        for spec in self.class_features.values():
            if spec.file not in self.files:
                raise ValueError(f"class feature file {spec.file!r} is not listed under [files]")
        return self


@dataclass
class CardReport:
    """Outcome of `check_card`: ``errors`` refuse loading, ``warnings`` are informational."""

    card: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def list_cards() -> list[str]:
    """Names of the shipped dataset cards (e.g. ``["APY", "AWA1", ...]``)."""
    return sorted(p.stem for p in (registry_root() / "datasets").glob("*.toml"))


@lru_cache(maxsize=None)
def _load_card(name: str) -> DatasetCard:
    path = registry_root() / "datasets" / f"{name}.toml"
    return validate_record(DatasetCard, read_toml(path), path)


def load_card(name: str) -> DatasetCard:
    """The card ``registry/datasets/<NAME>.toml`` (name matched case-insensitively)."""
    match = {c.upper(): c for c in list_cards()}.get(name.upper())
    if match is not None:
        return _load_card(match)
    card = plugin_card(name)
    if card is None:
        known = list_cards() + sorted(plugin_datasets())
        raise ConfigError(f"unknown dataset {name!r}{did_you_mean(name, known)}; cards exist for {known}")
    return card


def plugin_datasets() -> dict:
    """Data sets registered by plugins (``register_datasets``): name -> its catalog entry."""
    from ..plugins import get_catalog  # the plugin catalog sits beside the data layer, not below it

    return dict(get_catalog().datasets)


def plugin_card(name: str) -> DatasetCard | None:
    """The card a plugin registered with data set ``name`` (case-insensitive), validated; None
    when no plugin registers ``name`` or it came without a card."""
    from ..plugins import get_catalog

    entry = get_catalog().dataset(name)
    if entry is None or entry.card is None:
        return None
    if isinstance(entry.card, DatasetCard):
        return entry.card
    try:
        return DatasetCard.model_validate(entry.card)
    except ValidationError as exc:
        from ..errors import format_validation_error

        raise PluginError(format_validation_error(f"plugin {entry.plugin!r}: card of data set {entry.name!r}", exc)) from None


def check_card(
    data_dir: str | os.PathLike, card: DatasetCard | str, data: AlignmentData | None = None
) -> CardReport:
    """Compare a dataset folder (and the loaded ``data``, if given) with ``card``.

    ``data_dir`` is the dataset folder (``<root>/CUB``) or the data root holding it. File checks
    read only headers (shapes via ``whosmat``) and checksums; with ``data`` the class counts of
    the labels are checked too. Nothing is raised for mismatches; they are returned.
    """
    card = load_card(card) if isinstance(card, str) else card
    folder = Path(data_dir)
    if not (folder / "att_splits.mat").exists() and (folder / card.name).is_dir():
        folder = folder / card.name
    report = CardReport(card.name)
    err = report.errors.append
    expected_shapes = _expected_shapes(card)
    for fname, spec in card.files.items():
        path = folder / fname
        if not path.is_file():
            if spec.required:
                err(f"{path}: missing (the {card.name} card requires it)")
            continue
        try:
            shapes = mat_shapes(path)
        except DataError as exc:
            err(str(exc))
            continue
        for key in spec.keys:
            if key not in shapes:
                err(f"{path}: key {key!r} missing (card {card.name}); keys found: {sorted(shapes)}")
        for key, want in expected_shapes.get(fname, {}).items():
            if key in shapes and not _same_shape(want, shapes[key]):
                err(f"{path}: key {key!r}: expected shape {want}, found {shapes[key]} (card {card.name})")
        if spec.sha256:
            known = _known_sha(data, fname) or sha256_file(path)
            if known not in spec.sha256:
                msg = f"{path}: sha256 {known} differs from the card's {spec.sha256}" + (f" ({spec.note})" if spec.note else "")
                (report.errors if spec.strict_checksum else report.warnings).append(msg)
    if data is not None:
        check_data(card, data, report)
    return report


def _expected_shapes(card: DatasetCard) -> dict[str, dict[str, tuple[int, ...]]]:
    """file -> key -> shape as stored (``dim x C``, ``D x N``, ``n x 1``)."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    if "res101.mat" in card.files:
        out["res101.mat"] = {"features": (card.feature_dim, card.num_images), "labels": (card.num_images, 1)}
    for spec in card.class_features.values():
        out.setdefault(spec.file, {})[spec.key] = (spec.dim, card.num_classes)
    sizes = card.splits.model_dump()
    for fname in card.files:
        if fname.endswith("splits.mat"):
            for split, key in SPLIT_KEYS.items():
                if sizes.get(split) is not None:
                    out.setdefault(fname, {})[key] = (sizes[split], 1)
            if card.has_class_names:
                out.setdefault(fname, {})["allclasses_names"] = (card.num_classes, 1)
    return out


def _same_shape(want: tuple[int, ...], found: tuple[int, ...]) -> bool:
    """Equal shapes; an expected ``n x 1`` vector also matches ``1 x n``."""
    if len(want) == 2 and want[1] == 1:
        return sorted(found) == sorted(want)
    return found == want


def _known_sha(data: AlignmentData | None, fname: str) -> str | None:
    if data is None:
        return None
    return data.meta.get("files", {}).get(fname, {}).get("sha256")


def check_data(card: DatasetCard, data: AlignmentData, report: CardReport) -> None:
    """Class counts of the loaded labels (shapes and split sizes are checked on the files)."""
    where = data.meta.get("dataset_dir", data.name)
    counts = {
        "num_seen_classes (classes of trainval)": (card.num_seen_classes, len(data.seen_classes)),
        "num_unseen_classes (classes of test_unseen)": (card.num_unseen_classes, len(data.unseen_classes)),
    }
    if card.num_train_classes is not None and "train" in data.splits:
        counts["num_train_classes (classes of train)"] = (card.num_train_classes, len(data.classes_of("train")))
    if card.num_val_classes is not None and "val" in data.splits:
        counts["num_val_classes (classes of val)"] = (card.num_val_classes, len(data.classes_of("val")))
    for what, (want, found) in counts.items():
        if want != found:
            report.errors.append(f"{where}: {what}: expected {want}, found {found} (card {card.name})")
