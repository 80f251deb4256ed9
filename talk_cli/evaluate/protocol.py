"""The `gnn` protocol: train on a bundle (or on the full training set), test on the real graph."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
import yaml

from talk_cli.atomic import atomic_write_bytes
from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.encode.cache import cache_dir
from talk_cli.encode.lm import LMIdentity
from talk_cli.errors import SettingsError
from talk_cli.graph import Graph
from talk_cli.evaluate.train import EvalSettings, Summary, train_runs


def mismatches(bundle: Bundle, tag: TAG, lm: LMIdentity, max_length: int) -> list[str]:
    """Ways in which the bundle was not made from this data and this LM."""
    problems = []
    if bundle.dataset.content_hash != tag.content_hash:
        problems.append(f"dataset hash differs (bundle: {bundle.dataset.name} {bundle.dataset.content_hash[:12]}, given: {tag.name} {tag.content_hash[:12]})")
    if bundle.dataset.split != tag.split_description:
        problems.append(f"split differs (bundle: {bundle.dataset.split!r}, given: {tag.split_description!r}); its test nodes may have been training nodes")
    if bundle.lm.weights_sha256 != lm.weights_sha256:
        problems.append(f"LM weights differ (bundle: {bundle.lm.name} {bundle.lm.weights_sha256[:12]}, given: {lm.name} {lm.weights_sha256[:12]})")
    if bundle.lm.max_length != max_length:
        problems.append(f"max length differs (bundle: {bundle.lm.max_length}, given: {max_length})")
    return problems


def check_match(bundle: Bundle, tag: TAG, lm: LMIdentity, max_length: int, allow_mismatch: bool) -> list[str]:
    problems = mismatches(bundle, tag, lm, max_length)
    if problems and not allow_mismatch:
        raise SettingsError("the bundle does not match the data and model given: " + "; ".join(problems) + " (--allow-mismatch to evaluate anyway)")
    return problems


def real_graph(tag: TAG, features: torch.Tensor, device: torch.device) -> Graph:
    return Graph.from_edges(features.to(device), tag.edge_index.to(device))


def bundle_targets(bundle: Bundle) -> torch.Tensor:
    """Class ids, or for soft labels a distribution: the learned KRR targets clamped at 0 and
    normalised per row (one-hot where a row has no positive mass)."""
    if bundle.soft_labels is None:
        return bundle.labels
    positive = bundle.soft_labels.clamp(min=0)
    one_hot = torch.nn.functional.one_hot(bundle.labels, positive.shape[1]).float()
    mass = positive.sum(dim=1, keepdim=True)
    return torch.where(mass > 0, positive / mass.clamp(min=1e-12), one_hot)


def evaluate_bundle(bundle: Bundle, tag: TAG, features: torch.Tensor, settings: EvalSettings, device: torch.device, on_epoch=None) -> Summary:
    edge_index, edge_weight = bundle.edges()
    synthetic = Graph.from_edges(bundle.features.to(device), edge_index.to(device), edge_weight.to(device))
    rows = torch.arange(bundle.num_synthetic, device=device)
    return train_runs(
        synthetic, rows, bundle_targets(bundle).to(device), real_graph(tag, features, device), tag.labels.to(device),
        *split_rows(tag, device), settings=settings, on_epoch=on_epoch,
    )  # fmt: skip


def split_rows(tag: TAG, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.nonzero(tag.val_mask).flatten().to(device), torch.nonzero(tag.test_mask).flatten().to(device)


def reference_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "references" / f"{key['dataset']}-{digest}.yaml"


def reference_key(tag: TAG, lm: LMIdentity, max_length: int, settings: EvalSettings) -> dict:
    return {
        "dataset": tag.name,
        "dataset_hash": tag.content_hash,
        "split": tag.split_description,
        "lm_weights_sha256": lm.weights_sha256,
        "max_length": max_length,
        "settings": dataclasses.asdict(settings),
    }


def cached_reference(key: dict) -> dict | None:
    path = reference_path(key)
    if not path.is_file():
        return None
    try:
        stored = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError):
        return None
    return stored.get("summary") if isinstance(stored, dict) and stored.get("key") == key else None


def evaluate_full(tag: TAG, features: torch.Tensor, settings: EvalSettings, device: torch.device, key: dict, on_epoch=None) -> dict:
    """The same model trained on every real training node (transductively, on the real graph)."""
    graph = real_graph(tag, features, device)
    train = torch.nonzero(tag.train_mask).flatten().to(device)
    labels = tag.labels.to(device)
    summary = train_runs(graph, train, labels[train], graph, labels, *split_rows(tag, device), settings=settings, on_epoch=on_epoch).as_dict()
    atomic_write_bytes(reference_path(key), yaml.safe_dump({"key": key, "summary": summary}, sort_keys=False).encode())
    return summary
