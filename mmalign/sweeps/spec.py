"""A sweep file: the runs it names, every one validated before any starts.

``SWEEP.toml``:

```toml
[fixed]                 # values every run shares
dataset = "CUB"
epochs = 100

[grid]                  # every combination of these lists
setting = ["gzsl", "zsl"]
shots = [0, 1, 2, 5, 10]
seed = [0, 1, 2]
"aligner.latent_size" = [32, 64]

[random]                # `samples` draws (seeded), each combined with every grid point
samples = 8
seed = 0
"aligner.training.lr" = { loguniform = [5e-5, 5e-4] }
"aligner.training.warmup.kl" = { choice = [{ start = 0, end = 93, factor = 0.25 }, { factor = 0.1 }] }
```

Keys are the run keys of `RUN_KEYS` (one benchmark run: data set, setting, shot count, seed,
...) and any aligner config value as ``aligner.<dotted path>``. Distributions: ``uniform``,
``loguniform`` (``[low, high]``), ``randint`` (``[low, high]`` inclusive), ``choice`` (a list).
Without ``[grid]`` and ``[random]`` the sweep is the single run of ``[fixed]``.

Every bound is a finite number (``randint``'s are integers within int64), a ``uniform`` range must
fit in a float, and a sweep names at most `MAX_RUNS` runs (grid points times ``samples``),
counted before anything is drawn or expanded. A ``dataset`` that is no card name must be an
existing folder.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..benchmarks.classification import BenchmarkRequest
from ..config import make_config
from ..errors import ConfigError, format_validation_error
from ..records.store import config_hash
from ..runs import DataSpec, read_config_file

#: Run keys, with their defaults (``None``: the recipe's or the data set's).
RUN_KEYS: dict[str, Any] = {
    "dataset": None, "data_dir": None, "synthetic": False, "synthetic_seed": 0, "side_info": "attributes",
    "skip_card_check": False, "setting": "gzsl", "shots": 0, "seed": 0, "epochs": None, "policy": "fixed",
    "classifier_epochs": None, "max_classifier_epochs": 100, "recipe": "cada_vae", "reparameterization": None,
    "device": "cpu", "engine": "auto", "precision": "fp32",
}
CARD_NAMES = ("CUB", "SUN", "AWA1", "AWA2", "APY", "FLO")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
#: Most runs one sweep may name (grid points times random samples; default 10,000): more is a typo
#: or a sweep that would never finish, and is refused before anything is expanded.
MAX_RUNS = 10_000
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its values (flat keys) and its id (hash of the values)."""

    params: dict[str, Any]
    id: str

    def describe(self, varying: list[str]) -> str:
        return ", ".join(f"{k}={self.params[k]!r}" for k in varying) or "(the [fixed] run)"


@dataclass(frozen=True)
class Sweep:
    source: str
    runs: list[SweepRun]
    varying: list[str]  # keys of [grid] and [random], in file order
    retries: int


def _check_key(where: str, key: str) -> None:
    if key in RUN_KEYS or (key.startswith("aligner.") and len(key) > len("aligner.")):
        return
    raise ConfigError(f"{where}: key {key!r}: not a run key; expected one of {sorted(RUN_KEYS)} or 'aligner.<key>'")


def _draw(where: str, spec: Any, rng: np.random.Generator) -> Any:
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS):
        raise ConfigError(f"{where}: expected one of {{uniform = [lo, hi]}}, {{loguniform = [lo, hi]}}, "
                          f"{{randint = [lo, hi]}} or {{choice = [...]}}, got {spec!r}")
    kind, arg = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"{where}: 'choice' needs a non-empty list, got {arg!r}")
        return arg[int(rng.integers(len(arg)))]
    lo, hi = _bounds(where, kind, arg)
    if kind == "uniform":
        return float(rng.uniform(lo, hi))
    if kind == "randint":
        return int(rng.integers(lo, hi, endpoint=True))
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _bounds(where: str, kind: str, arg: Any) -> tuple[Any, Any]:
    """``[low, high]`` of a distribution, checked: finite numbers with low <= high; integers within
    int64 for ``randint``; a difference that fits in a float for ``uniform``; low > 0 for ``loguniform``."""
    numbers = isinstance(arg, list) and len(arg) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)
    if not numbers or not all(math.isfinite(v) for v in arg) or not arg[0] <= arg[1]:
        raise ConfigError(f"{where}: {kind!r} needs [low, high], finite numbers with low <= high, got {arg!r}")
    lo, hi = arg
    if kind == "randint":
        if not all(isinstance(v, int) for v in arg) or lo < _INT64[0] or hi >= _INT64[1]:
            raise ConfigError(f"{where}: 'randint' needs integer bounds between -2^63 and 2^63 - 2, got {arg!r}")
    elif kind == "uniform" and not math.isfinite(float(hi) - float(lo)):
        raise ConfigError(f"{where}: 'uniform' range {arg!r} is wider than a float can hold; narrow it")
    elif kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{where}: 'loguniform' needs low > 0, got {arg!r}")
    return lo, hi


def _nested(params: dict[str, Any]) -> dict[str, Any]:
    """``{"aligner.training.lr": x}`` -> ``{"training": {"lr": x}}`` (the aligner overrides)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith("aligner."):
            continue
        *path, last = key.split(".")[1:]
        table = out
        for part in path:
            table = table.setdefault(part, {})
        table[last] = value
    return out


def build_request(params: dict[str, Any], out: Path) -> BenchmarkRequest:
    """The benchmark run of one sweep run's values, writing into ``out`` (raises `ConfigError`
    naming the key of a bad value)."""
    v = {**RUN_KEYS, **{k: p for k, p in params.items() if k in RUN_KEYS}}
    if not isinstance(v["dataset"], str):
        raise ConfigError(f"key 'dataset': expected a data set name ({', '.join(CARD_NAMES)}) or a folder, got {v['dataset']!r}")
    named = v["dataset"].upper() in CARD_NAMES
    dataset = v["dataset"].upper() if named else str(Path(v["dataset"]).expanduser().resolve())
    if not named and not Path(dataset).is_dir():
        raise ConfigError(f"key 'dataset': {v['dataset']!r} is neither a data set card ({', '.join(CARD_NAMES)}) "
                          "nor an existing folder")
    for key, kind in (("shots", int), ("seed", int), ("max_classifier_epochs", int), ("synthetic_seed", int)):
        if not isinstance(v[key], kind) or isinstance(v[key], bool) or v[key] < 0:
            raise ConfigError(f"key {key!r}: expected a non-negative integer, got {v[key]!r}")
    for key in ("epochs", "classifier_epochs"):
        if v[key] is not None and (not isinstance(v[key], int) or isinstance(v[key], bool) or v[key] < 1):
            raise ConfigError(f"key {key!r}: expected a positive integer, got {v[key]!r}")
    for key, allowed in (("setting", ("gzsl", "zsl")), ("policy", ("fixed", "val", "test")), ("engine", ("auto", "reference")),
                         ("precision", ("fp32", "bf16")), ("reparameterization", (None, "cada2019", "standard"))):
        if v[key] not in allowed:
            raise ConfigError(f"key {key!r}: expected one of {[a for a in allowed if a]}, got {v[key]!r}")
    if not named and v["synthetic"]:
        raise ConfigError(f"key 'synthetic': generated data needs a named data set ({', '.join(CARD_NAMES)}), got {v['dataset']!r}")
    policy = v["policy"]
    if v["classifier_epochs"] is not None:
        if policy != "fixed":
            raise ConfigError("key 'classifier_epochs' fixes the classifier's epochs; it cannot be combined with policy val/test")
        policy = "manual"
    try:
        data = DataSpec(dataset=dataset, data_dir=v["data_dir"], synthetic=v["synthetic"],
                        synthetic_seed=v["synthetic_seed"], side_info=v["side_info"],
                        skip_card_check=v["skip_card_check"])
    except ValidationError as exc:
        raise ConfigError(format_validation_error("", exc, show_input=True)) from None
    return BenchmarkRequest(
        dataset=dataset if named else Path(dataset).name, data=data, setting=v["setting"], shots=[v["shots"]],
        seeds=[v["seed"]], epochs=v["epochs"], device=v["device"], policy=policy, recipe=v["recipe"],
        reparameterization=v["reparameterization"], out=out, resume=False, progress=False, engine=v["engine"],
        precision=v["precision"], stack_seeds=False, max_classifier_epochs=v["max_classifier_epochs"],
        classifier_epochs=v["classifier_epochs"], aligner=_nested(params))


def validate_run(params: dict[str, Any]) -> None:
    """Everything that can be checked without data: run keys, the recipe, the aligner config, the
    recipe's classifier-epoch table for a fixed policy."""
    req = build_request(params, Path("."))  # loads the recipe and makes the policy
    try:
        make_config({**req.aligner, "seed": req.seeds[0]}, req.recipe)
    except ConfigError as exc:
        key = str(exc).split("key ", 1)[1].split(":")[0].strip("'") if "key " in str(exc) else ""
        raise ConfigError(f"key 'aligner.{key}': {exc}" if key else str(exc)) from None
    try:
        req.policy.check(req.recipe, req.dataset, req.setting, req.shots[0])
    except ConfigError:
        raise ConfigError(f"key 'policy': the {req.recipe.describe()} recipe has no classifier-epoch table for "
                          f"{req.dataset} ({req.setting}, {req.shots[0]} shots); set classifier_epochs or "
                          "policy = 'val'") from None


def parse_sweep(raw: dict[str, Any], source: str) -> Sweep:
    """Expand and validate a sweep (see the module docstring); errors name ``source`` and the key."""
    unknown = sorted(set(raw) - {"fixed", "grid", "random", "execution"})
    if unknown:
        raise ConfigError(f"{source}: unknown table {unknown[0]!r}; expected [fixed], [grid], [random], [execution]")
    tables = {name: raw.get(name, {}) for name in ("fixed", "grid", "random", "execution")}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {type(table).__name__}")
    execution = dict(tables["execution"])
    retries = execution.pop("retries", 1)
    if execution:
        raise ConfigError(f"{source}: key 'execution.{next(iter(execution))}': unknown; [execution] takes 'retries'")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"{source}: key 'execution.retries': expected a non-negative integer, got {retries!r}")
    fixed, grid, rand = tables["fixed"], tables["grid"], dict(tables["random"])
    samples, rand_seed = rand.pop("samples", 1 if rand else 0), rand.pop("seed", 0)
    if rand and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
        raise ConfigError(f"{source}: key 'random.samples': expected a positive integer, got {samples!r}")
    if not isinstance(rand_seed, int) or isinstance(rand_seed, bool) or not 0 <= rand_seed < 2**63:
        raise ConfigError(f"{source}: key 'random.seed': expected an integer from 0 to 2^63 - 1, got {rand_seed!r}")
    origin: dict[str, str] = {}
    for name, table in (("fixed", fixed), ("grid", grid), ("random", rand)):
        for key in table:
            _check_key(f"{source}: [{name}]", key)
            if key in origin:
                raise ConfigError(f"{source}: key {key!r} is given in both [{origin[key]}] and [{name}]")
            origin[key] = name
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: key 'grid.{key}': expected a non-empty list of values, got {values!r}")
    count = math.prod(len(values) for values in grid.values()) * (samples if rand else 1)
    if count > MAX_RUNS:
        sizes = " x ".join([*(str(len(v)) for v in grid.values()), *([f"{samples} samples"] if rand else [])])
        raise ConfigError(f"{source}: the sweep names {count:,} runs ({sizes}); at most {MAX_RUNS:,} are allowed: "
                          "shrink [grid] or 'random.samples', or split it into several sweeps")
    rng = np.random.default_rng(rand_seed)
    draws = [{k: _draw(f"{source}: key 'random.{k}'", spec, rng) for k, spec in rand.items()} for _ in range(samples)] or [{}]
    runs, seen = [], set()
    for point in itertools.product(*grid.values()):
        for draw in draws:
            params = {**fixed, **dict(zip(grid, point)), **draw}
            try:
                validate_run(params)
            except ConfigError as exc:
                text = str(exc)
                key = text.split("key '", 1)[1].split("'", 1)[0] if "key '" in text else None
                table = origin.get(key, "fixed") if key else None
                where = f"key '{table}.{key}' = {params.get(key)!r}" if key in params else "a run"
                raise ConfigError(f"{source}: {where}: {text}") from None
            run = SweepRun(params, config_hash(params))
            if run.id not in seen:
                seen.add(run.id)
                runs.append(run)
    return Sweep(source, runs, [*grid, *rand], retries)


def read_sweep(path: str | Path) -> Sweep:
    """Read and validate ``SWEEP.toml`` (see `parse_sweep`)."""
    raw = read_config_file(path, "sweep file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected tables at the top level, got {type(raw).__name__}")
    return parse_sweep(raw, str(path))
