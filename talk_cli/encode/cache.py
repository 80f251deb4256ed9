"""The features cache: `[num_nodes, hidden]` LM features in one safetensors file whose metadata
records everything they depend on (the key). A cache whose key differs from the current request
in any of those is stale and gets re-encoded. Key and tensor are one file, written atomically, so
no reader can see one without the other; the file name also carries the pooling and short hashes
of the dataset and the weights, so that features read another way never replace each other."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from safetensors import SafetensorError, safe_open

from talk_cli.provenance import Provenance

CACHE_ENV = "TALK_CACHE_DIR"
FEATURES_TENSOR = "features"
KEY_METADATA = "talk_features_key"  # the safetensors metadata entry holding the key, as JSON


@dataclass(frozen=True)
class FeatureKey:
    """Everything the encoded features depend on: where they came from, and the compute dtype."""

    provenance: Provenance
    dtype: str

    def recorded(self) -> dict[str, object]:
        """The key as the cache file records it."""
        return self.provenance.features_key(self.dtype)

    def metadata(self) -> dict[str, str]:
        return {KEY_METADATA: json.dumps(self.recorded(), sort_keys=True)}


def cache_dir() -> Path:
    """$TALK_CACHE_DIR, else the platform's per-user cache folder."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("talk_cli"))


def default_features_path(key: FeatureKey) -> Path:
    source = key.provenance
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", source.lm_name).strip("_")[-60:]
    hashes = f"{source.dataset_hash[:8]}-{source.lm_weights_sha256[:8]}"
    return cache_dir() / "features" / f"{source.dataset_name}__{model}__{source.pooling}__len{source.max_length}__{key.dtype}__{hashes}.safetensors"


def stale_fields(recorded: object, key: FeatureKey) -> list[str]:
    """Names of the fields where a recorded key disagrees with `key` (empty: fresh)."""
    expected = key.recorded()
    if not isinstance(recorded, dict):
        return ["key"]
    differ = []
    for field in ("format", "version", "pooling", "max_length", "dtype", "shape"):
        if recorded.get(field) != expected[field]:
            differ.append(field)
    for section in ("dataset", "model"):
        got = recorded.get(section) if isinstance(recorded.get(section), dict) else {}
        differ += [f"{section}.{k}" for k, v in expected[section].items() if got.get(k) != v]  # type: ignore[union-attr]
    return differ


def read_fresh_features(path: Path, key: FeatureKey) -> tuple[torch.Tensor | None, list[str]]:
    """The cached features at `path` if the key they record matches `key`; else None and why not."""
    if not path.is_file():
        return None, ["missing"]
    try:
        with safe_open(str(path), framework="pt") as handle:
            differ = stale_fields(key_of(handle), key)
            if differ:
                return None, differ
            features = handle.get_tensor(FEATURES_TENSOR)
    except (SafetensorError, OSError, ValueError):  # ValueError: bad JSON, or no such tensor
        return None, ["unreadable"]
    if list(features.shape) != key.recorded()["shape"]:
        return None, ["shape"]
    return features, []


def key_of(handle) -> dict[str, object] | None:
    """The key an open features cache file records (None when it records none)."""
    return json.loads((handle.metadata() or {}).get(KEY_METADATA, "null"))


def recorded_key(path: Path) -> dict[str, object] | None:
    """The key the features cache file at `path` records."""
    with safe_open(str(path), framework="pt") as handle:
        return key_of(handle)
