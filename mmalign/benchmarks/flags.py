"""Command-line flags shared by the benchmarks and ``mmalign eval``, each validated in one place.

`add_run_flags` gives every benchmark the same seeds, epochs, device, engine, recipe and
output flags; `add_protocol_flags` gives the latent-classifier benchmarks and ``eval`` the
protocol flags (setting, shots, classifier-epoch policy). The protocol flags default to ``None``
so a flag the user gave can be told from its default; `protocol_policy` fills the defaults
in, checks the values and returns the `EpochPolicy`.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..preflight import check_shot_counts, positive
from ..protocols.policies import EpochPolicy, make_policy
from ..recipes import DEFAULT_RECIPE

#: Defaults of the protocol flags (the flags themselves default to None).
PROTOCOL_DEFAULTS = {"setting": "gzsl", "shots": [0], "policy": "fixed", "max_classifier_epochs": 100}


def add_rerun_flags(p: argparse.ArgumentParser, where: str) -> None:
    p.add_argument("--resume", action="store_true", help=f"skip runs already recorded in {where}")
    p.add_argument("--force", action="store_true", help=f"run again and replace records already in {where}")


def check_rerun_flags(args: argparse.Namespace) -> None:
    if args.resume and args.force:
        raise ConfigError("--resume keeps recorded runs and --force replaces them; pass only one")


def add_threads_flags(p: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--deterministic``."""
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch and the BLAS libraries (default: all cores; OpenMP waits with a short "
                        "spin, then sleeps)")
    p.add_argument("--deterministic", action="store_true", help="use only deterministic kernels (GPU)")


def add_engine_flags(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument("--engine", choices=("auto", "reference"), default=default,
                   help="training path: auto (default) = the fastest path that agrees with the reference on this "
                        "device (CUDA graph on a GPU, fused Adam + oneDNN or MKL products on a CPU); reference = the plain "
                        "PyTorch loop")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32" if default else None,
                   help="bf16 autocast of the matrix products (engine auto; recorded in every result)")


def add_tracking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", choices=("tensorboard", "mlflow"), action="append", default=[],
                   help="track training: tensorboard (mmalign[tensorboard]) or mlflow (mmalign[mlflow]); repeatable")
    p.add_argument("--tracking-uri", help="mlflow tracking URI (default: a local store in the output folder)")


def add_run_flags(p: argparse.ArgumentParser, default_epochs: str, default_recipe: str = DEFAULT_RECIPE) -> None:
    """The flags every benchmark takes: seeds, epochs, device, engine, recipe, output, progress."""
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed")
    p.add_argument("--epochs", type=int, help=f"VAE epochs (default: {default_epochs})")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    add_engine_flags(p)
    p.add_argument("--recipe", help=f"the recipe: a name in registry/recipes ('mmalign recipes' lists them) or the "
                                    f"path of a recipe TOML file; recorded in every result (default: {default_recipe})")
    p.add_argument("--reparameterization", choices=("cada2019", "standard"), help="override the recipe's mode")
    p.add_argument("--out", default="runs/benchmark", help="folder for results.json (default runs/benchmark)")
    add_rerun_flags(p, "OUT/results.json")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_threads_flags(p)


def check_run_flags(args: argparse.Namespace) -> None:
    """The values of `add_run_flags`' flags."""
    check_rerun_flags(args)
    positive(args.seeds, "--seeds")
    positive(args.epochs, "--epochs")  # seeds themselves are checked by the aligner config (0 <= seed < 2**63)


def add_protocol_flags(p: argparse.ArgumentParser) -> None:
    """``--setting``, ``--shots``, ``--policy``, ``--classifier-epochs``, ``--max-classifier-epochs``."""
    p.add_argument("--setting", choices=("gzsl", "zsl"), help="gzsl (default: S, U, H) or zsl (top-1)")
    p.add_argument("--shots", type=int, nargs="+", metavar="K",
                   help="images per unseen class moved to the classifier's training set (default 0)")
    p.add_argument("--policy", choices=("fixed", "val", "test"),
                   help="classifier epochs: the recipe's table (fixed, default), chosen on validation classes "
                        "with a second VAE trained on the training classes (val), or on test (reported as such)")
    p.add_argument("--classifier-epochs", type=int, metavar="N",
                   help="train the final classifier for exactly N epochs (policy 'manual'; for data sets "
                        "without a table)")
    p.add_argument("--max-classifier-epochs", type=int, metavar="N",
                   help="range searched by --policy val/test (default 100)")


def protocol_policy(args: argparse.Namespace) -> EpochPolicy:
    """Fill in the protocol flags' defaults, check them, and return the classifier-epoch policy
    (``manual`` when ``--classifier-epochs`` is given)."""
    for name, default in PROTOCOL_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_shot_counts(args.shots)
    positive(args.max_classifier_epochs, "--max-classifier-epochs")
    positive(args.classifier_epochs, "--classifier-epochs")
    return make_policy(args.policy, args.classifier_epochs)
