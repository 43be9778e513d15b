"""How many epochs the final classifier trains: the model-selection policy, an object, always recorded.

* `FixedEpochs` (``fixed``): the released code's table (``recipe.classifier.epochs``), as
  the paper did.
* `ValidationEpochs` (``val``): chosen on validation classes, never on test data. A second
  aligner (`ValidationEpochs.selection_model`) is trained on `validation_view` of the
  data (the xlsa17 ``train`` classes play "seen", the ``val`` classes "unseen"); the same protocol
  then runs on the view for ``1..max_epochs`` epochs in one run and the epoch with the best H (GZSL)
  or top-1 (ZSL) is used.
* `TestEpochs` (``test``): the same selection on the test split itself. Optimistic; only
  when asked for, and recorded as such.
* `ManualEpochs` (``manual``): an epoch count given by the caller.

`make_policy` turns the names (and a given epoch count) into these objects: the one place
they are parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from ..recipes import DEFAULT_RECIPE, Recipe, load_recipe
from .validation import EpochSelection, best_epoch, select_epochs, validation_view

__all__ = ["EpochPolicy", "EpochSelection", "FixedEpochs", "ManualEpochs", "POLICIES", "TestEpochs",
           "ValidationEpochs", "best_epoch", "fixed_epochs", "make_policy", "select_epochs", "validation_view"]


def fixed_epochs(dataset: str, setting: str, shots: int, recipe: Recipe | str = DEFAULT_RECIPE) -> int:
    """The released code's classifier epochs for ``dataset`` (CUB, SUN, AWA1, AWA2), or a
    `ConfigError` naming what is missing."""
    rec = load_recipe(recipe)
    value = rec.classifier.fixed_epochs(dataset, setting, shots)
    if value is None:
        table = rec.classifier
        raise ConfigError(
            f"recipe {rec.describe()} has no fixed classifier epochs for dataset {dataset!r}, setting {setting!r}, "
            f"{shots} shots (datasets {sorted(table.epochs)}, shots {table.shots}); "
            f"use policy='val' (select on validation classes) or policy='manual' with epochs=N"
        )
    return int(value)


class EpochPolicy:
    """A classifier-epoch policy: its ``name`` (recorded in every result), what the count is
    ``selected_on`` (``table``, ``given``, ``val``, ``test``), and the checks it needs before any run."""

    name: ClassVar[str]
    selected_on: ClassVar[str]
    #: whether the epochs are chosen by training on the test data (the whole range is run)
    selects_on_test: ClassVar[bool] = False
    #: whether a second aligner, trained on the validation view, is needed
    needs_selection_model: ClassVar[bool] = False

    def check(self, recipe: Recipe, dataset: str, setting: str, shots: int) -> None:
        """Raise `ConfigError` now if a run with these values could not get its epochs."""

    def given_epochs(self) -> int | None:
        """The epoch count fixed before any data is seen (``manual``), else None."""
        return None

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:  # a policy compares with its name too ("fixed" == FixedEpochs())
        if isinstance(other, str):
            return other == self.name
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(self.name)


class FixedEpochs(EpochPolicy):
    name, selected_on = "fixed", "table"

    def check(self, recipe: Recipe, dataset: str, setting: str, shots: int) -> None:
        fixed_epochs(dataset, setting, shots, recipe)

    def epochs(self, recipe: Recipe, dataset: str, setting: str, shots: int) -> int:
        return fixed_epochs(dataset, setting, shots, recipe)


@dataclass(eq=False)
class ManualEpochs(EpochPolicy):
    count: int = 0
    name: ClassVar[str] = "manual"
    selected_on: ClassVar[str] = "given"

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.count!r}")

    def given_epochs(self) -> int:
        return self.count


class ValidationEpochs(EpochPolicy):
    name, selected_on, needs_selection_model = "val", "val", True

    @staticmethod
    def selection_model(aligner: Any, data: Any, seed: int, progress: bool = True) -> tuple[Any, Any]:
        """"val trains a second VAE", written once: an untrained copy of ``aligner`` (same
        modalities, config and recipe; `fresh`) fitted on
        `validation_view` of ``data`` (the train classes only). Returns ``(model, view)``."""
        view = validation_view(data, seed=seed)
        selector = aligner.fresh(seed=seed)
        selector.fit(view, progress=progress)
        return selector, view


class TestEpochs(EpochPolicy):
    name, selected_on, selects_on_test = "test", "test", True


#: The policy names, in the order the CLI lists them.
POLICIES = ("fixed", "val", "test", "manual")
_BY_NAME = {"fixed": FixedEpochs, "val": ValidationEpochs, "test": TestEpochs}


def make_policy(policy: "EpochPolicy | str" = "fixed", epochs: int | None = None) -> EpochPolicy:
    """The policy object for a name (``fixed``, ``val``, ``test``; ``manual`` with ``epochs``), or
    ``policy`` itself. A given epoch count with ``fixed`` means ``manual``; with ``val``/``test`` it
    is an error (they choose the count)."""
    if isinstance(policy, EpochPolicy):
        if epochs is not None and not isinstance(policy, ManualEpochs):
            raise ConfigError(f"policy {policy.name!r} chooses its epochs; epochs={epochs} cannot be combined with it")
        return policy
    if policy == "manual" or (policy == "fixed" and epochs is not None):
        if epochs is None:
            raise ConfigError("policy='manual' needs epochs=N")
        return ManualEpochs(epochs)
    if policy not in _BY_NAME:
        raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")
    if epochs is not None:
        raise ConfigError(f"epochs=N fixes the classifier's epochs; it cannot be combined with policy val/test "
                          f"(got policy={policy!r})")
    return _BY_NAME[policy]()
