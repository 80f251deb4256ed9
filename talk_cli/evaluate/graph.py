"""A graph prepared once for full-batch training and evaluation.

PyG's convolutions accept an edge list, but then GCNConv, SGConv and APPNP re-normalise it on
every call and pass messages edge by edge. On arxiv_2023 (33,868 nodes) that made a GCN
training epoch about twice and an evaluation forward several times as slow as multiplying by
sparse CSR matrices built once, which is what `Graph` holds and hands to the layers as their
`adj_t` (`benchmarks/evaluate.py` measures both; docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from talk_cli.kernel.sntk import normalized_adjacency_sparse, sparse_csr


@dataclass(frozen=True)
class Graph:
    x: torch.Tensor
    normalized: torch.Tensor  # D^-1/2 (A + I) D^-1/2, sparse CSR: GCN, SGC and APPNP propagate with it
    pattern: torch.Tensor  # A's non-zero pattern with unit values, sparse CSR: GraphSAGE's mean

    @classmethod
    def from_edges(cls, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> Graph:
        """`edge_index` lists each undirected edge in both directions, so A is symmetric and
        equals the transposed adjacency that PyG's layers expect."""
        n = x.shape[0]
        ones = torch.ones(edge_index.shape[1], dtype=x.dtype, device=x.device)
        return cls(x, normalized_adjacency_sparse(edge_index, n, x.dtype, edge_weight), sparse_csr(edge_index, ones, n))
