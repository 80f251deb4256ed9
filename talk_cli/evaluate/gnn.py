"""The `gnn` protocol (LM frozen): train on a bundle's features, or on every real training node
(the full-data reference), and test on the real graph."""

from __future__ import annotations

import torch

from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.evaluate.train import EvalSettings, RealNodes, Summary, Training, train_runs
from talk_cli.graph import Graph


def bundle_targets(bundle: Bundle) -> torch.Tensor:
    return training_targets(bundle.labels, bundle.soft_labels)


def training_targets(labels: torch.Tensor, soft_labels: torch.Tensor | None) -> torch.Tensor:
    """Class ids, or for soft labels a distribution: the learned KRR targets clamped at 0 and
    normalised per row (one-hot where a row has no positive mass)."""
    if soft_labels is None:
        return labels
    positive = soft_labels.clamp(min=0)
    one_hot = torch.nn.functional.one_hot(labels, positive.shape[1]).to(positive.dtype)
    mass = positive.sum(dim=1, keepdim=True)
    return torch.where(mass > 0, positive / mass.clamp(min=1e-12), one_hot)


def synthetic_training(features: torch.Tensor, adjacency: torch.Tensor, targets: torch.Tensor) -> Training:
    """A synthetic graph (dense weighted adjacency) with every node a training row."""
    from torch_geometric.utils import dense_to_sparse

    edge_index, edge_weight = dense_to_sparse(adjacency)
    graph = Graph.from_edges(features, edge_index, edge_weight.to(features.dtype))
    return Training(graph, torch.arange(features.shape[0], device=features.device), targets)


def bundle_training(bundle: Bundle, x: torch.Tensor, device: torch.device) -> Training:
    """The bundle's synthetic graph with node features `x`, every node a training row."""
    return synthetic_training(x.to(device), bundle.adjacency.to(device), bundle_targets(bundle).to(device))


def evaluate_bundle(bundle: Bundle, tag: TAG, features: torch.Tensor, settings: EvalSettings, device: torch.device, on_epoch=None) -> Summary:
    return train_runs(bundle_training(bundle, bundle.features, device), RealNodes.of(tag, features, device), settings, on_epoch)


def full_training(tag: TAG, real: RealNodes) -> Training:
    """Every real training node, on the real graph with its features (transductive)."""
    train = torch.nonzero(tag.train_mask).flatten().to(real.labels.device)
    return Training(real.graph, train, real.labels[train])


def evaluate_full(tag: TAG, features: torch.Tensor, settings: EvalSettings, device: torch.device, on_epoch=None) -> Summary:
    """The same model trained on every real training node (transductively, on the real graph)."""
    real = RealNodes.of(tag, features, device)
    return train_runs(full_training(tag, real), real, settings, on_epoch)
