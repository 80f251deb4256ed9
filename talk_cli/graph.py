"""Graph helpers shared by the kernel (stage 3) and the downstream models (stage 6): the
GCN-normalised adjacency Â = D^-1/2 (A + I) D^-1/2, sparse for real graphs and dense for the
small synthetic one, and a real graph prepared once for full-batch training.

PyG's convolutions accept an edge list, but then GCNConv, SGConv and APPNP re-normalise it on
every call and pass messages edge by edge. On arxiv_2023 (33,868 nodes) that made a GCN training
epoch about twice and an evaluation forward several times as slow as multiplying by sparse CSR
matrices built once, which is what `Graph` holds and hands to the layers as their `adj_t`
(`benchmarks/evaluate.py` measures both; docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm


def sparse_csr(edge_index: torch.Tensor, values: torch.Tensor, num_nodes: int, num_columns: int | None = None) -> torch.Tensor:
    """A [num_nodes, num_columns] (default square) sparse CSR matrix with `values` at `edge_index`."""
    shape = (num_nodes, num_nodes if num_columns is None else num_columns)
    coo = torch.sparse_coo_tensor(edge_index, values, shape, check_invariants=True)
    return coo.coalesce().to_sparse_csr()


def normalized_adjacency_sparse(
    edge_index: torch.Tensor, num_nodes: int, dtype: torch.dtype = torch.float32, edge_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Â of an undirected (optionally weighted) graph as a sparse CSR tensor, normalised by PyG's
    `gcn_norm` exactly as GCNConv would (missing self-loops get weight 1)."""
    index, weight = gcn_norm(edge_index, edge_weight, num_nodes, add_self_loops=True, dtype=dtype)
    return sparse_csr(index, weight, num_nodes)


def normalized_adjacency_dense(adjacency: torch.Tensor) -> torch.Tensor:
    """Â for a small dense weighted adjacency (differentiable in the weights)."""
    with_loops = adjacency + torch.eye(adjacency.shape[0], dtype=adjacency.dtype, device=adjacency.device)
    scale = with_loops.sum(dim=1).pow(-0.5)
    return scale[:, None] * with_loops * scale[None, :]


@dataclass(frozen=True)
class Graph:
    """Node features with the graph's structure prepared once as sparse CSR matrices."""

    x: torch.Tensor
    normalized: torch.Tensor  # Â, sparse CSR: GCN, SGC and APPNP propagate with it
    pattern: torch.Tensor  # A's non-zero pattern with unit values, sparse CSR: GraphSAGE's mean

    @classmethod
    def from_edges(cls, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> Graph:
        """`edge_index` lists each undirected edge in both directions, so A is symmetric and
        equals the transposed adjacency that PyG's layers expect."""
        n = x.shape[0]
        ones = torch.ones(edge_index.shape[1], dtype=x.dtype, device=x.device)
        return cls(x, normalized_adjacency_sparse(edge_index, n, x.dtype, edge_weight), sparse_csr(edge_index, ones, n))

    @cached_property
    def propagated(self) -> torch.Tensor:
        """ÂX, computed on first use and kept with the graph (no gradient): a GCN predicting on the
        same graph many times starts each prediction from it (`models.GCN`)."""
        with torch.no_grad():
            return self.normalized @ self.x

    @cached_property
    def propagated_twice(self) -> torch.Tensor:
        """Â²X, kept like `propagated`: SGC's input on fixed features (`models.SGC`)."""
        with torch.no_grad():
            return self.normalized @ self.propagated

    def with_features(self, x: torch.Tensor) -> Graph:
        """The same structure with other node features (the joint protocol re-encodes them)."""
        return Graph(x, self.normalized, self.pattern)

    def neighbourhood(self, nodes: torch.Tensor, hops: int) -> tuple[torch.Tensor, Graph]:
        """The nodes within `hops` of `nodes` (`subset`, with `nodes` first, in order) and the graph
        on them, keeping the whole graph's normalised weights: a model with `hops` propagation
        steps computes exactly the same outputs for `nodes` on it as on the whole graph."""
        from torch_geometric.utils import k_hop_subgraph

        pattern = self.pattern.to_sparse_coo().coalesce()
        reached, _, _, _ = k_hop_subgraph(nodes, hops, pattern.indices(), num_nodes=self.x.shape[0])
        rest = reached[~torch.isin(reached, nodes)]
        subset = torch.cat([nodes, rest])
        position = numbering(subset, self.x.shape[0])
        return subset, Graph(self.x[subset], restrict(self.normalized, position, len(subset)), restrict(self.pattern, position, len(subset)))

    def predicting(self, nodes: torch.Tensor) -> tuple[torch.Tensor, Graph]:
        """A graph on which a 2-layer GCN *predicting* (from the kept ÂX, `models.GCN`) computes
        exactly its whole-graph outputs for `nodes`, which come first, in order: their 1-hop
        neighbourhood (`subset`, as `neighbourhood` returns it), with ÂX's rows taken from the whole
        graph. On a large graph this is far smaller than the 2-hop neighbourhood training would need."""
        subset, graph = self.neighbourhood(nodes, 1)
        rows = restrict(self.normalized, numbering(subset, self.x.shape[0]), len(subset), columns=False)
        with torch.no_grad():
            # cached_property keeps its value in the instance's dict: seeded here with the rows of
            # the whole graph's ÂX, which the subgraph's own Â could not give at its border.
            graph.__dict__["propagated"] = rows @ self.x
        return subset, graph


def numbering(subset: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Each node's position in `subset`, -1 for the nodes outside it."""
    position = torch.full((num_nodes,), -1, dtype=torch.long, device=subset.device)
    position[subset] = torch.arange(len(subset), device=subset.device)
    return position


def restrict(matrix: torch.Tensor, position: torch.Tensor, size: int, columns: bool = True) -> torch.Tensor:
    """The rows (and, with `columns`, the columns) of a sparse CSR matrix at the nodes with
    `position` >= 0, renumbered; without `columns`, every column is kept."""
    coo = matrix.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    rows = position[rows]
    cols = position[cols] if columns else cols
    kept = (rows >= 0) & (cols >= 0)
    return sparse_csr(torch.stack([rows[kept], cols[kept]]), coo.values()[kept], size, size if columns else matrix.shape[1])
