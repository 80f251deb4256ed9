"""docs/bundle-format.md as code: the manifest schema and the tensor rules.

Validation functions raise a specific `BundleError` naming the field or tensor at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from talk_cli.bundle.card import CARD_FILE
from talk_cli.bundle.errors import (
    ManifestError,
    TensorError,
    UnsafePathError,
    UnsupportedVersionError,
)
from talk_cli.device import DTYPES

FORMAT_NAME = "talk-bundle"
FORMAT_VERSION = "1.4.0"
SUPPORTED_MAJOR, SUPPORTED_MINOR = 1, 4
MANIFEST_FILE = "manifest.yaml"
TENSOR_FILE = "synthetic.safetensors"
MAX_MANIFEST_BYTES = 1 << 20
MAX_TENSOR_BYTES = 4 << 30
HEADER_ALLOWANCE = 1 << 20

# What `load_bundle` verifies, in the order it does (`talk inspect --verify` lists them).
CHECKS = (
    "manifest parses (safe YAML) and conforms to format 1.x",
    "tensor file is a regular file inside the bundle",
    "sha256 of the tensor file matches the manifest",
    "tensor names, shapes and dtypes match the inventory and each other",
    "values obey the format: finite, labels in range, 0/1 mask, symmetric non-negative adjacency with zero diagonal",
    "the dataset card (README.md), where the manifest lists it, matches its sha256 and opens with YAML front matter",
)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+\.safetensors$")

# Section -> field -> type. `float` admits ints; None in a type tuple admits null.
SCHEMA: dict[str, dict[str, tuple]] = {
    "tool": {"name": (str,), "version": (str,)},
    "dataset": {
        "name": (str,),
        "content_hash": ("sha256",),
        "num_nodes": (int,),
        "num_classes": (int,),
        "label_names": ("list[str]",),
        "split": (str,),
        "num_train": (int,),
    },
    "lm": {
        "name": (str,),
        "hidden_size": (int,),
        "tokenizer": (str,),
        "weights_sha256": ("sha256",),
        "pooling": (str,),
        "max_length": (int,),
    },
    "distillation": {
        "method": (str,),
        "ratio": (float, None),
        "ratio_of": (str,),
        "num_synthetic": (int,),
        "seed": (int,),
        "settings": (dict,),
    },
    "tensors": {"file": (str,), "sha256": ("sha256",), "inventory": (dict,)},
}
# Fields added by minor versions: readers accept their absence (older bundles).
OPTIONAL_FIELDS: dict[str, dict[str, tuple]] = {
    "lm": {
        "embedding_size": (int,),  # 1.1: width of the input embeddings, when it is not hidden_size
        "revision": (str,),  # 1.4: the hub commit of a known model's weights
    },
    "distillation": {
        "curve": ("list[dict]",),  # 1.1: the distillation curve, for plots
        "ratio_denominator": (int,),  # 1.2: how many nodes the ratio is a fraction of
        "features_from_tokens": (bool,),  # 1.2: whether features = pool(LM(token_embeddings))
    },
}
# Before 1.2 bundles did not say whether their features come from their tokens; the format's
# text named this one method as the exception.
FREE_FEATURE_METHODS = ("kernel-features",)
TOP_LEVEL = {"format": str, "format_version": str, "created": str, **{k: dict for k in SCHEMA}}
# 1.2: `made` (the command, device and library versions, time and peak memory) and `card`;
# 1.3: `privacy` (what the token sequences reveal of the real texts, measured when made).
OPTIONAL_TOP_LEVEL = {"evaluation": dict, "made": dict, "card": dict, "privacy": dict}
CARD_FIELDS = {"file": (str,), "sha256": ("sha256",), "license": (str,)}

REQUIRED_TENSORS = ("token_embeddings", "attention_mask", "adjacency", "labels", "features")
OPTIONAL_TENSORS = ("soft_labels",)
TENSOR_DTYPES = {
    "token_embeddings": "float32",
    "attention_mask": "int64",
    "adjacency": "float32",
    "labels": "int64",
    "features": "float32",
    "soft_labels": "float32",
}


def matches(value: object, kind: object) -> bool:
    if kind is None:
        return value is None
    if kind == "sha256":
        return isinstance(value, str) and bool(SHA256.match(value))
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list[dict]":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)  # type: ignore[arg-type]


def type_name(kinds: tuple) -> str:
    return " or ".join("null" if k is None else k if isinstance(k, str) else k.__name__ for k in kinds)


def validate_manifest(manifest: object) -> None:
    """Check structure, types and version of a parsed manifest (not the tensors)."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{MANIFEST_FILE}: expected a YAML mapping, got {type(manifest).__name__}")
    for key, kind in TOP_LEVEL.items():
        if key not in manifest:
            raise ManifestError(f"{MANIFEST_FILE}: missing '{key}'")
        if not isinstance(manifest[key], kind):
            raise ManifestError(f"{MANIFEST_FILE}: '{key}' must be a {kind.__name__}")
    for key, kind in OPTIONAL_TOP_LEVEL.items():
        if key in manifest and not isinstance(manifest[key], kind):
            raise ManifestError(f"{MANIFEST_FILE}: '{key}' must be a {kind.__name__}")
    if manifest["format"] != FORMAT_NAME:
        raise ManifestError(f"{MANIFEST_FILE}: format is {manifest['format']!r}, not {FORMAT_NAME!r}")
    version = SEMVER.match(manifest["format_version"])
    if not version:
        raise ManifestError(f"{MANIFEST_FILE}: format_version {manifest['format_version']!r} is not MAJOR.MINOR.PATCH")
    if int(version.group(1)) != SUPPORTED_MAJOR:
        raise UnsupportedVersionError(
            f"bundle format version {manifest['format_version']} is not supported (this reader knows {SUPPORTED_MAJOR}.x); upgrade talk_cli"
        )
    # Keys this reader does not know are typos in a bundle of a version it knows, but may be
    # optional additions in a newer minor version, which it must still read.
    strict = int(version.group(2)) <= SUPPORTED_MINOR
    unknown = sorted(set(map(str, manifest)) - set(TOP_LEVEL) - set(OPTIONAL_TOP_LEVEL))
    if unknown and strict:
        raise ManifestError(f"{MANIFEST_FILE}: unknown key(s) {unknown}")
    for section, fields in SCHEMA.items():
        optional = OPTIONAL_FIELDS.get(section, {})
        unknown = sorted(set(map(str, manifest[section])) - set(fields) - set(optional))
        if unknown and strict:
            raise ManifestError(f"{MANIFEST_FILE}: unknown key(s) {unknown} in '{section}'")
        for field, kinds in (fields | optional).items():
            where = f"{MANIFEST_FILE}: '{section}.{field}'"
            if field not in manifest[section]:
                if field in optional:
                    continue
                raise ManifestError(f"{where} is missing")
            if not any(matches(manifest[section][field], kind) for kind in kinds):
                raise ManifestError(f"{where} must be {type_name(kinds)}, got {manifest[section][field]!r:.60}")
    dataset, lm, distillation = manifest["dataset"], manifest["lm"], manifest["distillation"]
    for where, value in (
        ("dataset.num_nodes", dataset["num_nodes"]),
        ("dataset.num_classes", dataset["num_classes"]),
        ("dataset.num_train", dataset["num_train"]),
        ("lm.hidden_size", lm["hidden_size"]),
        ("lm.max_length", lm["max_length"]),
        ("lm.embedding_size", embedding_size(manifest)),
        ("distillation.num_synthetic", distillation["num_synthetic"]),
    ):
        if value < 1:
            raise ManifestError(f"{MANIFEST_FILE}: '{where}' must be at least 1, got {value}")
    if len(dataset["label_names"]) != dataset["num_classes"]:
        raise ManifestError(f"{MANIFEST_FILE}: 'dataset.label_names' has {len(dataset['label_names'])} names for {dataset['num_classes']} classes")
    ratio = distillation["ratio"]
    if ratio is not None and not 0 < ratio <= 1:
        raise ManifestError(f"{MANIFEST_FILE}: 'distillation.ratio' must be in (0, 1], got {ratio}")
    check_file_name(manifest["tensors"]["file"])
    check_inventory(manifest)
    if "card" in manifest:
        check_card_entry(manifest["card"])


def check_card_entry(card: Mapping) -> None:
    for field, kinds in CARD_FIELDS.items():
        if field not in card or not any(matches(card[field], kind) for kind in kinds):
            raise ManifestError(f"{MANIFEST_FILE}: 'card.{field}' must be {type_name(kinds)}")
    if card["file"] != CARD_FILE:
        raise UnsafePathError(f"{MANIFEST_FILE}: card.file must be {CARD_FILE!r}, got {card['file']!r:.60}")


def check_file_name(name: str) -> None:
    if not SAFE_NAME.match(name) or name in (".", "..") or name.startswith("."):
        raise UnsafePathError(
            f"{MANIFEST_FILE}: tensors.file {name!r} is not a plain file name inside the bundle (letters, digits, '.', '_', '-', ending in .safetensors)"
        )


def embedding_size(manifest: Mapping) -> int:
    """e, the width of the LM's input embeddings: `lm.embedding_size`, else `lm.hidden_size`."""
    return manifest["lm"].get("embedding_size", manifest["lm"]["hidden_size"])


def expected_shapes(manifest: Mapping) -> dict[str, list[int] | None]:
    """Shapes the manifest implies; None marks the free sequence length L."""
    n = manifest["distillation"]["num_synthetic"]
    h = manifest["lm"]["hidden_size"]
    c = manifest["dataset"]["num_classes"]
    return {
        "token_embeddings": [n, None, embedding_size(manifest)],
        "attention_mask": [n, None],
        "adjacency": [n, n],
        "labels": [n],
        "features": [n, h],
        "soft_labels": [n, c],
    }


def check_inventory(manifest: Mapping) -> None:
    inventory = manifest["tensors"]["inventory"]
    names = set(map(str, inventory))
    missing = [t for t in REQUIRED_TENSORS if t not in names]
    extra = sorted(names - set(REQUIRED_TENSORS) - set(OPTIONAL_TENSORS))
    if missing or extra:
        raise ManifestError(f"{MANIFEST_FILE}: tensor inventory is missing {missing} / has unknown {extra}")
    shapes = expected_shapes(manifest)
    seq_len = None
    for name, entry in inventory.items():
        where = f"{MANIFEST_FILE}: inventory entry '{name}'"
        if not isinstance(entry, dict) or set(entry) != {"shape", "dtype"}:
            raise ManifestError(f"{where} must be a mapping with exactly 'shape' and 'dtype'")
        shape, dtype = entry["shape"], entry["dtype"]
        if not isinstance(shape, list) or not all(matches(d, int) and d >= 0 for d in shape):
            raise ManifestError(f"{where}: shape must be a list of non-negative integers, got {shape!r:.60}")
        if dtype != TENSOR_DTYPES[name]:
            raise ManifestError(f"{where}: dtype must be {TENSOR_DTYPES[name]}, got {dtype!r}")
        expected = shapes[name]
        if len(shape) != len(expected):
            raise ManifestError(f"{where}: shape {shape} should have {len(expected)} dimensions")
        if name in ("token_embeddings", "attention_mask"):
            seq_len = shape[1] if seq_len is None else seq_len
            expected = [seq_len if d is None else d for d in expected]
            if seq_len < 1:
                raise ManifestError(f"{where}: the sequence length must be at least 1")
        if shape != expected:
            raise ManifestError(f"{where}: shape {shape} disagrees with the manifest, which implies {expected}")
    total = inventory_bytes(manifest)
    if total > MAX_TENSOR_BYTES:
        raise ManifestError(f"{MANIFEST_FILE}: the inventory adds up to {total} bytes, over the {MAX_TENSOR_BYTES}-byte limit")


def dtype_name(dtype: torch.dtype) -> str:
    return next((name for name, entry in DTYPES.items() if entry.torch == dtype), str(dtype))


def inventory_bytes(manifest: Mapping) -> int:
    total = 0
    for entry in manifest["tensors"]["inventory"].values():
        elements = 1
        for dim in entry["shape"]:
            elements *= dim
        total += elements * DTYPES[entry["dtype"]].size
    return total


def check_tensor_values(tensors: Mapping[str, torch.Tensor], num_classes: int) -> None:
    """The value rules of the tensor table (shapes and dtypes were checked against the inventory)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise TensorError(f"tensor '{name}' holds non-finite values")
    labels = tensors["labels"]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise TensorError(f"tensor 'labels' holds values outside 0..{num_classes - 1}")
    mask = tensors["attention_mask"]
    if not torch.isin(mask, torch.tensor([0, 1])).all():
        raise TensorError("tensor 'attention_mask' holds values other than 0 and 1")
    if (mask.sum(dim=1) == 0).any():
        raise TensorError("tensor 'attention_mask' has a row with no attended position")
    adjacency = tensors["adjacency"]
    if (adjacency < 0).any():
        raise TensorError("tensor 'adjacency' has negative weights")
    if adjacency.numel() and adjacency.diagonal().abs().max() > 0:
        raise TensorError("tensor 'adjacency' has a non-zero diagonal (self-loops are not stored)")
    scale = adjacency.abs().max().clamp(min=1.0) if adjacency.numel() else 1.0
    if adjacency.numel() and (adjacency - adjacency.T).abs().max() > 1e-5 * scale:
        raise TensorError("tensor 'adjacency' is not symmetric")
