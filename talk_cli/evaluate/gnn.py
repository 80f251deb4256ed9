"""The `gnn` protocol (LM frozen): train on a bundle's features, or on every real training node
(the full-data reference), and test on the real graph."""

from __future__ import annotations

import torch

from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.gnn.settings import EvalSettings
from talk_cli.gnn.train import RealNodes, Summary, Training, synthetic_training, train_runs, training_targets


def bundle_targets(bundle: Bundle) -> torch.Tensor:
    return training_targets(bundle.labels, bundle.soft_labels)


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
