"""Facts about a bundle for `talk inspect` (computed here, rendered by the CLI)."""

from __future__ import annotations

from typing import Any

import torch

from talk_cli.bundle.bundle import Bundle


def graph_stats(adjacency: torch.Tensor) -> dict[str, Any]:
    """Density and degree range of the synthetic graph (edges = non-zero off-diagonal weights)."""
    n = adjacency.shape[0]
    edges = adjacency > 0
    degrees = edges.sum(dim=1)
    weighted = adjacency.sum(dim=1)
    pairs = n * (n - 1)
    return {
        "num_edges": int(edges.sum()) // 2,
        "density": round(float(edges.sum()) / pairs, 6) if pairs else 0.0,
        "degree_min": int(degrees.min()) if n else 0,
        "degree_max": int(degrees.max()) if n else 0,
        "weighted_degree_min": round(float(weighted.min()), 6) if n else 0.0,
        "weighted_degree_max": round(float(weighted.max()), 6) if n else 0.0,
    }


def summarize(bundle: Bundle) -> dict[str, Any]:
    counts = torch.bincount(bundle.labels, minlength=bundle.dataset.num_classes).tolist()
    return {
        "format_version": bundle.format_version,
        "tool_version": bundle.tool_version,
        "created": bundle.created,
        "dataset": vars(bundle.dataset),
        "lm": vars(bundle.lm),
        "distillation": vars(bundle.distillation),
        "synthetic": {
            "num_nodes": bundle.num_synthetic,
            "sequence_length": int(bundle.token_embeddings.shape[1]),
            "hidden_size": int(bundle.token_embeddings.shape[2]),
            "soft_labels": bundle.soft_labels is not None,
            "class_counts": dict(zip(bundle.dataset.label_names, counts)),
            **graph_stats(bundle.adjacency),
        },
        "evaluation": bundle.evaluation,
    }
