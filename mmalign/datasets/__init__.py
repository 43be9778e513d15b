"""Readers that turn benchmark files into AlignmentData.

- `load_dataset` / `load_class_level`: a named benchmark (``"CUB"``, ``"SUN"``,
  ``"AWA1"``, ``"AWA2"``, ``"APY"``, ``"FLO"``), located under ``data_dir`` /
  ``$MMALIGN_DATA_DIR`` / the user cache and checked against its card in
  ``registry/datasets/``; or any folder in the xlsa17 layout (no card).
- `read_xlsa17`, `read_class_level`, `read_res101`: the file readers.
- `download_xlsa17`: fetch and unpack the public release.
- `map_features`: per-sample features left on disk (safetensors, one file or shards) for
  training sets larger than memory.
- `synthetic_like`, `write_xlsa17_layout`: benchmark-shaped synthetic data and a writer
  of the exact file layout.
"""

from .cards import CardReport, DatasetCard, check_card, list_cards, load_card
from .load import load_class_level, load_dataset
from ..mapped import MappedFeatures, map_features
from .locate import default_data_dir, download_xlsa17, find_dataset_dir, resolve_data_dir
from .synthetic import synthetic_like, write_xlsa17_layout
from .xlsa17 import ClassLevelData, Res101, read_class_level, read_res101, read_xlsa17

__all__ = [
    "CardReport", "ClassLevelData", "DatasetCard", "Res101", "check_card", "default_data_dir",
    "download_xlsa17", "find_dataset_dir", "list_cards", "load_card", "load_class_level",
    "load_dataset", "map_features", "MappedFeatures", "read_class_level", "read_res101", "read_xlsa17", "resolve_data_dir",
    "synthetic_like", "write_xlsa17_layout",
]
