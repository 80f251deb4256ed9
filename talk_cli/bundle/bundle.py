"""The `Bundle` object and its safe reader and atomic writer (docs/bundle-format.md)."""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from talk_cli.atomic import atomic_write_bytes, check_replaceable, staged_directory
from talk_cli.bundle import spec
from talk_cli.bundle.card import CARD_FILE, DEFAULT_LICENSE, card_front_matter, render_card
from talk_cli.bundle.errors import (
    BundleExistsError,
    BundleNotFoundError,
    ChecksumError,
    ManifestError,
    TensorError,
    UnsafePathError,
)
from talk_cli.device import DTYPES
from talk_cli.version import __version__


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    content_hash: str
    num_nodes: int
    num_classes: int
    label_names: list[str]
    split: str
    num_train: int


@dataclass(frozen=True)
class LMInfo:
    name: str
    hidden_size: int
    tokenizer: str
    weights_sha256: str
    pooling: str  # mean or cls (talk_cli.encode.lm.POOLINGS)
    max_length: int
    embedding_size: int  # width of the input embeddings (ELECTRA's differs from hidden_size)
    revision: str | None = None  # the hub commit of a known model's weights (encode/known.py)


@dataclass(frozen=True)
class DistillationInfo:
    method: str
    ratio: float | None
    ratio_of: str
    num_synthetic: int
    seed: int
    settings: dict[str, Any]
    # One point per validation of a learned set: {step, val_accuracy, loss (mean over the steps
    # since the previous point)}. Empty for coresets.
    curve: list[dict[str, Any]] = field(default_factory=list)
    ratio_denominator: int | None = None  # the training nodes the ratio counted (since 1.2)
    # Whether `features` are pool(LM(token_embeddings)), so that an LM fine-tuned on the tokens
    # trains on what the bundle is (since 1.2; before, every method but kernel-features).
    features_from_tokens: bool = True


@dataclass
class Bundle:
    """A distilled synthetic graph with everything needed to train on it and trace it."""

    token_embeddings: torch.Tensor  # float32 [n, L, h]
    attention_mask: torch.Tensor  # int64 [n, L]
    adjacency: torch.Tensor  # float32 [n, n], symmetric, zero diagonal
    labels: torch.Tensor  # int64 [n]
    features: torch.Tensor  # float32 [n, h]
    dataset: DatasetInfo
    lm: LMInfo
    distillation: DistillationInfo
    soft_labels: torch.Tensor | None = None  # float32 [n, C]
    evaluation: dict[str, Any] = field(default_factory=dict)
    # The command, device and library versions, time and peak memory of the run that made it.
    made: dict[str, Any] = field(default_factory=dict)
    # What the bundle reveals of the real texts, measured when it was made (bundle/privacy.py).
    privacy: dict[str, Any] = field(default_factory=dict)
    license: str = DEFAULT_LICENSE  # the dataset card's
    created: str = ""
    tool_version: str = __version__
    format_version: str = spec.FORMAT_VERSION

    @property
    def num_synthetic(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        named = {
            "token_embeddings": self.token_embeddings,
            "attention_mask": self.attention_mask,
            "adjacency": self.adjacency,
            "labels": self.labels,
            "features": self.features,
        }
        if self.soft_labels is not None:
            named["soft_labels"] = self.soft_labels
        return named

    def edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The adjacency as PyG's (edge_index, edge_weight): its non-zero entries."""
        from torch_geometric.utils import dense_to_sparse

        return dense_to_sparse(self.adjacency)

    def to_pyg(self):
        """The synthetic graph as a `torch_geometric.data.Data` (x = pooled LM features)."""
        from torch_geometric.data import Data

        edge_index, edge_weight = self.edges()
        data = Data(
            x=self.features,
            edge_index=edge_index,
            edge_weight=edge_weight,
            y=self.labels,
            token_embeddings=self.token_embeddings,
            attention_mask=self.attention_mask,
            num_nodes=self.num_synthetic,
        )
        if self.soft_labels is not None:
            data.soft_y = self.soft_labels
        return data

    def manifest(self, tensor_sha256: str) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "format": spec.FORMAT_NAME,
            "format_version": self.format_version,
            "tool": {"name": "talk_cli", "version": self.tool_version},
            "created": self.created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dataset": vars(self.dataset) | {"label_names": list(self.dataset.label_names)},
            "lm": {k: v for k, v in vars(self.lm).items() if v is not None},  # no revision: not pinned
            "distillation": {k: v for k, v in vars(self.distillation).items() if v is not None or k != "ratio_denominator"},
            "tensors": {
                "file": spec.TENSOR_FILE,
                "sha256": tensor_sha256,
                "inventory": {name: {"shape": list(t.shape), "dtype": spec.dtype_name(t.dtype)} for name, t in self.tensors().items()},
            },
        }
        if self.evaluation:
            manifest["evaluation"] = self.evaluation
        if self.made:
            manifest["made"] = self.made
        if self.privacy:
            manifest["privacy"] = self.privacy
        return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(file: Path, expected: str) -> None:
    """Refuse a file whose sha256 is not the one the manifest records."""
    actual = sha256_file(file)
    if actual != expected:
        raise ChecksumError(f"{file}: sha256 {actual[:16]}… does not match the manifest's {expected[:16]}…")


def check_target(path: Path, force: bool) -> bool:
    """Whether `path` exists and will be replaced: only when forced, and only a bundle holding
    nothing but a bundle's files (anything else there is the user's). Callers check early, before
    long work."""
    files = (spec.MANIFEST_FILE, spec.TENSOR_FILE, CARD_FILE)
    return check_replaceable(path, force, files, "a bundle", "files that are not a bundle's", BundleExistsError)


def write_bundle(bundle: Bundle, path: Path, force: bool = False) -> Path:
    """Write atomically: build in a temporary directory beside `path`, fsync, rename into place.

    The result is validated against the spec before it is moved into place, so a writer bug
    cannot publish a bundle that readers would refuse.
    """
    path = Path(path)
    check_target(path, force)
    with staged_directory(path) as staging:
        tensors = {name: t.detach().cpu().contiguous() for name, t in bundle.tensors().items()}
        atomic_write_bytes(staging / spec.TENSOR_FILE, save(tensors))
        manifest = bundle.manifest(sha256_file(staging / spec.TENSOR_FILE))
        atomic_write_bytes(staging / CARD_FILE, render_card(bundle, manifest).encode())
        manifest["card"] = {"file": CARD_FILE, "sha256": sha256_file(staging / CARD_FILE), "license": bundle.license}
        atomic_write_bytes(staging / spec.MANIFEST_FILE, yaml.safe_dump(manifest, sort_keys=False).encode())
        load_bundle(staging)  # never publish what a reader would refuse
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / spec.MANIFEST_FILE
    if not path.is_dir():
        raise BundleNotFoundError(f"{path}: not a bundle directory")
    if not manifest_path.is_file():
        raise BundleNotFoundError(f"{path}: no {spec.MANIFEST_FILE}; not a bundle")
    if manifest_path.stat().st_size > spec.MAX_MANIFEST_BYTES:
        raise ManifestError(f"{manifest_path}: larger than {spec.MAX_MANIFEST_BYTES} bytes; refusing to parse it")
    try:
        manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"{manifest_path}: not valid UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ManifestError(f"{manifest_path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    spec.validate_manifest(manifest)
    return manifest


def tensor_file(path: Path, manifest: dict[str, Any]) -> Path:
    """The tensor file the manifest names, refused unless it is a regular file inside `path`."""
    candidate = path / manifest["tensors"]["file"]
    if candidate.is_symlink() or not candidate.resolve().parent == path.resolve():
        raise UnsafePathError(f"{candidate}: is a link or lies outside the bundle directory; refusing to read it")
    if not candidate.is_file():
        raise BundleNotFoundError(f"{path}: the tensor file {manifest['tensors']['file']} is missing")
    limit = spec.inventory_bytes(manifest) + spec.HEADER_ALLOWANCE
    if candidate.stat().st_size > limit:
        raise TensorError(f"{candidate}: {candidate.stat().st_size} bytes, more than the inventory allows ({limit})")
    return candidate


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and fully verify a bundle; raise a specific `BundleError` on any problem."""
    path = Path(path)
    manifest = read_manifest(path)
    file = tensor_file(path, manifest)
    check_sha256(file, manifest["tensors"]["sha256"])
    tensors = read_tensors(file, manifest["tensors"]["inventory"])
    spec.check_tensor_values(tensors, manifest["dataset"]["num_classes"])
    if "card" in manifest:  # bundles before format 1.2 have none
        check_card(path, manifest["card"])
    # Only the fields this version knows: a newer minor version may add others.
    info = {key: {f: manifest[key][f] for f in spec.SCHEMA[key]} for key in ("dataset", "lm", "distillation")}
    return Bundle(
        **tensors,
        dataset=DatasetInfo(**info["dataset"]),
        lm=LMInfo(**info["lm"], embedding_size=spec.embedding_size(manifest), revision=manifest["lm"].get("revision")),
        distillation=DistillationInfo(
            **info["distillation"],
            curve=manifest["distillation"].get("curve", []),
            ratio_denominator=manifest["distillation"].get("ratio_denominator"),
            features_from_tokens=manifest["distillation"].get("features_from_tokens", manifest["distillation"]["method"] not in spec.FREE_FEATURE_METHODS),
        ),
        evaluation=manifest.get("evaluation", {}),
        made=manifest.get("made", {}),
        privacy=manifest.get("privacy", {}),
        license=manifest["card"]["license"] if "card" in manifest else DEFAULT_LICENSE,
        created=manifest["created"],
        tool_version=manifest["tool"]["version"],
        format_version=manifest["format_version"],
    )


def read_card(path: Path) -> str:
    """The text of a bundle's dataset card, after `load_bundle` has checked the bundle (and with it
    the card's sha256). Only the card the manifest lists counts: a stray README.md is not one."""
    listed = read_manifest(path).get("card")
    if listed is None:
        raise BundleNotFoundError(f"{path}: no dataset card (bundles of format 1.1 and older have none)")
    return (path / listed["file"]).read_text(encoding="utf-8")


def check_card(path: Path, card: dict[str, Any]) -> None:
    """The dataset card the manifest lists: a regular file inside the bundle, its sha256 as
    recorded, opening with YAML front matter."""
    file = path / card["file"]
    if file.is_symlink() or not file.is_file():
        raise BundleNotFoundError(f"{path}: the dataset card {card['file']} is missing (or is a link)")
    check_sha256(file, card["sha256"])
    try:
        card_front_matter(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"{file}: not a dataset card: {err}") from None


def read_tensors(file: Path, inventory: dict[str, dict]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(file), framework="pt") as handle:
            names = set(handle.keys())
            if names != set(inventory):
                raise TensorError(f"{file}: holds tensors {sorted(names)}, but the manifest's inventory lists {sorted(inventory)}")
            tensors = {}
            for name, entry in inventory.items():
                info = handle.get_slice(name)
                if list(info.get_shape()) != entry["shape"] or info.get_dtype() != DTYPES[entry["dtype"]].safetensors:
                    raise TensorError(
                        f"{file}: tensor '{name}' is {info.get_dtype()} {list(info.get_shape())}, the inventory says {entry['dtype']} {entry['shape']}"
                    )
                tensors[name] = handle.get_tensor(name)
    except (SafetensorError, OSError) as err:
        raise TensorError(f"{file}: not a readable safetensors file ({str(err).splitlines()[0][:200]})") from None
    return tensors
