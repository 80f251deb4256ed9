"""A bundle's synthetic graph in numbers and words: what `talk inspect`, its plot and the dataset
card all say about it, said once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
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


NO_EDGES = (
    "none: the synthetic nodes are unconnected (structure: identity, the default, which never scored "
    "worse on validation; see docs/method.md). The real graph still shaped their features, through the "
    "graph-aware kernel; a GNN trained on the bundle sees each synthetic node's own features only"
)


def learned_structure(bundle: Bundle) -> str | None:
    """How a learned set's edges were made (identity, knn, learned); None for a coreset, which
    keeps the real subgraph of its picked nodes and records no structure setting."""
    return bundle.distillation.settings.get("structure")


def structure(bundle: Bundle, num_edges: int) -> str:
    """What the synthetic graph's edges are, said plainly (an identity structure has none)."""
    how = learned_structure(bundle)
    if how is None:
        return f"{num_edges} edges: the real edges among the picked nodes" if num_edges else "none: no two picked nodes are adjacent in the real graph"
    return f"{num_edges} weighted edges (structure: {how})" if num_edges else NO_EDGES
