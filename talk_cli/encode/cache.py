"""The features cache: `[num_nodes, hidden]` LM features plus a YAML sidecar.

The sidecar records everything the features depend on; a cache whose sidecar differs
from the current request in any of those is stale and gets re-encoded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from talk_cli.provenance import Provenance

CACHE_ENV = "TALK_CACHE_DIR"
FEATURES_TENSOR = "features"


@dataclass(frozen=True)
class FeatureKey:
    """Everything the encoded features depend on: where they came from, and the compute dtype."""

    provenance: Provenance
    dtype: str

    def sidecar(self) -> dict[str, object]:
        return self.provenance.features_key(self.dtype)


def cache_dir() -> Path:
    """$TALK_CACHE_DIR, else the platform's per-user cache folder."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("talk_cli"))


def default_features_path(key: FeatureKey) -> Path:
    source = key.provenance
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", source.lm_name).strip("_")[-60:]
    return cache_dir() / "features" / f"{source.dataset_name}__{model}__len{source.max_length}__{key.dtype}.safetensors"


def sidecar_path(features_path: Path) -> Path:
    return features_path.with_suffix(".yaml")


def stale_fields(recorded: object, key: FeatureKey) -> list[str]:
    """Names of the fields where a recorded sidecar disagrees with `key` (empty: fresh)."""
    expected = key.sidecar()
    if not isinstance(recorded, dict):
        return ["sidecar"]
    differ = []
    for field in ("format", "version", "pooling", "max_length", "dtype", "shape"):
        if recorded.get(field) != expected[field]:
            differ.append(field)
    for section in ("dataset", "model"):
        got = recorded.get(section) if isinstance(recorded.get(section), dict) else {}
        differ += [f"{section}.{k}" for k, v in expected[section].items() if got.get(k) != v]  # type: ignore[union-attr]
    return differ


def read_fresh_features(path: Path, key: FeatureKey) -> tuple[torch.Tensor | None, list[str]]:
    """The cached features at `path` if they match `key`; else None and why not."""
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return None, ["missing"]
    try:
        recorded = yaml.safe_load(side.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None, ["sidecar unreadable"]
    differ = stale_fields(recorded, key)
    if differ:
        return None, differ
    try:
        features = load_file(str(path))[FEATURES_TENSOR]
    except (SafetensorError, OSError, KeyError):
        return None, ["tensor file unreadable"]
    if list(features.shape) != key.sidecar()["shape"]:
        return None, ["shape"]
    return features, []

