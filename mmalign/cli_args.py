"""Command-line flags shared by ``mmalign eval`` and ``mmalign benchmark``, validated in one place.

The protocol flags default to ``None`` so a command can tell a flag the user gave from its default
(``benchmark cub-text`` rejects the ones that do not apply); :func:`check_protocol_flags` fills
in the defaults and checks the values.
"""

from __future__ import annotations

import argparse

from .errors import ConfigError
from .threads import limit_threads

BENCHMARKS = ("cub", "sun", "awa1", "awa2", "apy", "flo", "custom", "cub-text")
#: Defaults of the protocol flags (the flags themselves default to None).
PROTOCOL_DEFAULTS = {"setting": "gzsl", "shots": [0], "policy": "fixed", "max_classifier_epochs": 100}


def plugin_dataset_names() -> list[str]:
    """Names of the data sets plugins register (none when plugins fail to load: reported later)."""
    from .errors import MmalignError
    from .plugins import get_catalog

    try:
        return sorted(get_catalog(strict=False).datasets)
    except MmalignError:
        return []


def benchmark_name(value: str) -> str:
    """argparse type of ``benchmark DATASET``: any case; a typo suggests the closest name."""
    from .datasets.cards import did_you_mean

    known = {n.lower(): n for n in (*BENCHMARKS, *plugin_dataset_names())}
    if value.lower() in known:
        return known[value.lower()]
    raise argparse.ArgumentTypeError(
        f"unknown data set {value!r}{did_you_mean(value, known.values())}; choose from {', '.join(known.values())}"
    )


def add_protocol_flags(p: argparse.ArgumentParser) -> None:
    """``--setting``, ``--shots``, ``--policy``, ``--classifier-epochs``, ``--max-classifier-epochs``,
    ``--threads`` and ``--deterministic``."""
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
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch and the BLAS libraries (default: all cores; OpenMP waits with a short spin, then sleeps)")
    p.add_argument("--deterministic", action="store_true", help="use only deterministic kernels (GPU)")


def check_protocol_flags(args: argparse.Namespace) -> str:
    """Fill in the protocol flags' defaults, check them, and return the classifier-epoch policy
    (``manual`` when ``--classifier-epochs`` is given)."""
    for name, default in PROTOCOL_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if any(s < 0 for s in args.shots):
        raise ConfigError(f"--shots must be non-negative, got {' '.join(map(str, args.shots))}")
    if len(set(args.shots)) != len(args.shots):
        raise ConfigError(f"--shots lists a count twice: {' '.join(map(str, args.shots))}")
    if args.max_classifier_epochs < 1:
        raise ConfigError(f"--max-classifier-epochs must be at least 1, got {args.max_classifier_epochs}")
    policy = args.policy
    if args.classifier_epochs is not None:
        if args.classifier_epochs < 1:
            raise ConfigError(f"--classifier-epochs must be at least 1, got {args.classifier_epochs}")
        if policy != "fixed":
            raise ConfigError("--classifier-epochs fixes the epochs; it cannot be combined with --policy val/test")
        policy = "manual"
    limit_threads(args.threads)
    if args.deterministic:
        from .determinism import enable_determinism

        enable_determinism()
    return policy
