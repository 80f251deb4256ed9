"""Find a dataset by name under the data root, or by path."""

from __future__ import annotations

import os
from pathlib import Path

from talk_cli.data.demo import make_demo_tag
from talk_cli.data.folder import load_tag_folder
from talk_cli.data.split import SplitSpec
from talk_cli.data.tag import TAG
from talk_cli.errors import DataError

DATA_ROOT_ENV = "TALK_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("../shared/datasets")  # beside the project checkout
BUILTIN = "demo"


def resolve_data_root(data_root: Path | None) -> Path | None:
    """--data-root, else $TALK_DATA_ROOT, else ../shared/datasets when it exists."""
    if data_root is not None:
        return Path(data_root)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    return DEFAULT_DATA_ROOT if DEFAULT_DATA_ROOT.is_dir() else None


def available_datasets(data_root: Path | None) -> list[str]:
    names = [BUILTIN]
    if data_root is not None and data_root.is_dir():
        names += sorted(p.name for p in data_root.iterdir() if (p / "nodes.jsonl").is_file())
    return names


def load_tag(dataset: str, data_root: Path | None = None, split: SplitSpec = SplitSpec()) -> TAG:
    """Load `dataset`: the built-in 'demo', a name under the data root, or a folder path."""
    if dataset == BUILTIN:
        return make_demo_tag(split=split)
    as_path = Path(dataset)
    if os.sep in dataset or as_path.is_dir():
        return load_tag_folder(as_path, split)
    root = resolve_data_root(data_root)
    if root is None:
        raise DataError(f"unknown dataset {dataset!r}: no data root (pass --data-root or set {DATA_ROOT_ENV}); built in: {BUILTIN}")
    if not root.is_dir():
        raise DataError(f"data root {root} is not a directory")
    if not (root / dataset).is_dir():
        raise DataError(f"unknown dataset {dataset!r} under data root {root}; available: {', '.join(available_datasets(root))}")
    return load_tag_folder(root / dataset, split, name=dataset)
