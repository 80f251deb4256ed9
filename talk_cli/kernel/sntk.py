"""The graph-aware (structure-based) neural tangent kernel of a GCN-like network.

For two graphs with GCN-normalised adjacencies Â_1, Â_2 and node features X_1, X_2:

    Σ = Θ = X_1 X_2ᵀ
    repeat K times:                       (one aggregation step)
        Σ ← Â_1 Σ Â_2ᵀ,  Θ ← Â_1 Θ Â_2ᵀ
        repeat L times:                   (one ReLU layer, arc-cosine recursion)
            ρ  = Σ / (d_1 d_2ᵀ)            d = sqrt(diag Σ) of each graph with itself
            Σ  ← d_1 d_2ᵀ · (ρ(π − arccos ρ) + sqrt(1 − ρ²)) / π
            Θ  ← Θ · (π − arccos ρ) / π + Σ

Two variants:
- "interleaved": exactly the recursion above. The real graph's d after the second
  aggregation needs the real-real Σ on pairs of nodes that share a neighbour
  (Σ_i (deg_i + 1)² entries); we compute that for K ≤ 2.
- "propagate-first": all K aggregations are applied to the features first, then the
  L ReLU layers: Σ = (Â_1^K X_1)(Â_2^K X_2)ᵀ. Then d = row norms of Â^K X, for any K,
  and the real side is a fixed [n, h] matrix computed once.

The real graph's Â is a sparse CSR tensor; products with it cost O(|E| · n_syn). Nothing
here forms a dense n × n matrix of the real graph. For propagate-first, the real side can be a
share of the rows (`RowShard`): several processes each hold their rows of Â^K X and compute
their rows of Θ_RS (docs/scale.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from talk_cli.kernel.spec import KernelSpec

KERNEL_DTYPE = torch.float64  # the kernel and KRR are tiny next to the LM; float64 keeps the solve stable
RHO_LIMIT = 1 - 1e-6  # keep arccos and sqrt(1 − ρ²) differentiable


@dataclass(frozen=True)
class Kernel:
    """Σ (the NNGP kernel) and Θ (the NTK) between two sets of nodes: the value each layer
    function below takes and returns, from the features' dot product to the last ReLU layer."""

    sigma: torch.Tensor
    theta: torch.Tensor


def dot(x1: torch.Tensor, x2: torch.Tensor) -> Kernel:
    """The input layer: Σ = Θ = X_1 X_2ᵀ."""
    sigma = x1 @ x2.T
    return Kernel(sigma, sigma)


def aggregate(kernel: Kernel, left: torch.Tensor, right: torch.Tensor) -> Kernel:
    """One aggregation step on both graphs: Â_1 K Â_2ᵀ (Â_1 may be sparse)."""
    return Kernel(left @ (kernel.sigma @ right.T), left @ (kernel.theta @ right.T))


def relu(kernel: Kernel, d1: torch.Tensor, d2: torch.Tensor, layers: int) -> Kernel:
    """`layers` ReLU layers of the NTK recursion (arc-cosine kernels of degree 1 and 0); d1, d2 are
    the two sides' sqrt(diag Σ) with themselves, which a ReLU layer preserves."""
    sigma, theta = kernel.sigma, kernel.theta
    scale = d1[:, None] * d2[None, :]
    for _ in range(layers):
        rho = (sigma / scale).clamp(-RHO_LIMIT, RHO_LIMIT)
        angle = torch.arccos(rho)
        sigma = scale * (rho * (math.pi - angle) + torch.sqrt(1 - rho * rho)) / math.pi
        theta = theta * (math.pi - angle) / math.pi + sigma
    return Kernel(sigma, theta)


def hops_before_and_after(spec: KernelSpec) -> tuple[int, int]:
    """The one switch between the variants: how many aggregation steps act on the features before
    their dot product (propagate-first: all K, then the L ReLU layers once), and how many act on
    the kernel after it, each followed by the L ReLU layers (interleaved)."""
    return (spec.hops, 0) if spec.variant == "propagate-first" else (0, spec.hops)


def arccos1(rho: torch.Tensor, layers: int) -> torch.Tensor:
    """ρ after `layers` ReLU layers when the diagonal is preserved (as it is here)."""
    for _ in range(layers):
        rho = rho.clamp(-RHO_LIMIT, RHO_LIMIT)
        rho = (rho * (math.pi - torch.arccos(rho)) + torch.sqrt(1 - rho * rho)) / math.pi
    return rho


def propagate(adjacency: torch.Tensor, features: torch.Tensor, hops: int) -> torch.Tensor:
    for _ in range(hops):
        features = adjacency @ features
    return features


@dataclass(frozen=True)
class RowShard:
    """Rows [start, stop) of the real graph held by this process, and `gather`, which assembles
    a whole [n, w] block from every process's rows of it (the identity when one process holds all)."""

    start: int
    stop: int
    gather: Callable[[torch.Tensor, int], torch.Tensor] = lambda local, num_rows: local

    @classmethod
    def whole(cls, num_rows: int) -> RowShard:
        return cls(0, num_rows)


def csr_rows(matrix: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of a sparse CSR matrix, as a [stop - start, n] CSR matrix (no copy of
    the other rows)."""
    crow, col, values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    first, last = int(crow[start]), int(crow[stop])
    return torch.sparse_csr_tensor(crow[start : stop + 1] - first, col[first:last], values[first:last], (stop - start, matrix.shape[1]), check_invariants=False)


PROPAGATION_BLOCK = 32  # feature columns propagated at a time: bounds the whole-graph [n, w] buffers


def propagate_rows(adjacency: torch.Tensor, features: torch.Tensor, hops: int, shard: RowShard) -> torch.Tensor:
    """The shard's rows of Â^K X in KERNEL_DTYPE, a block of feature columns at a time: each hop
    multiplies the shard's rows of Â by the whole block, which `gather` then assembles from every
    process for the next hop. Only [n, PROPAGATION_BLOCK] of the whole graph is ever in KERNEL_DTYPE."""
    n = adjacency.shape[0]
    rows = csr_rows(adjacency, shard.start, shard.stop)
    out = torch.empty(shard.stop - shard.start, features.shape[1], dtype=KERNEL_DTYPE, device=features.device)
    for first in range(0, features.shape[1], PROPAGATION_BLOCK):
        columns = slice(first, first + PROPAGATION_BLOCK)
        block = features[:, columns].to(KERNEL_DTYPE)
        local = block[shard.start : shard.stop]
        for hop in range(hops):
            local = rows @ block
            if hop < hops - 1:
                block = shard.gather(local, n)
        out[:, columns] = local
    return out


class RealGraphSide:
    """Everything about the real graph that the kernel needs, computed once per feature matrix:
    the features after the hops before the dot product (propagate-first: the shard's rows of
    Â^K X; `cross_kernel`'s `rows` then count from the shard's first row), and for hops after it
    the real graph's d at each of them (interleaved: every row is needed)."""

    def __init__(self, adjacency: torch.Tensor, features: torch.Tensor, spec: KernelSpec, shard: RowShard | None = None):
        self.adjacency = adjacency
        self.spec = spec
        self.shard = shard or RowShard.whole(adjacency.shape[0])
        before, after = hops_before_and_after(spec)
        if after and (self.shard.start, self.shard.stop) != (0, adjacency.shape[0]):
            raise ValueError("the interleaved kernel's real side is not sharded: it needs every row")
        self.propagated = propagate_rows(adjacency, features, before, self.shard)
        self.norms = interleaved_real_norms(adjacency, self.propagated, spec) if after else []

    @property
    def rowwise(self) -> bool:
        """Whether `cross_kernel` computes only the rows asked for (propagate-first); the interleaved
        kernel aggregates over the whole graph whichever rows are asked."""
        return hops_before_and_after(self.spec)[1] == 0


def interleaved_real_norms(adjacency: torch.Tensor, features: torch.Tensor, spec: KernelSpec) -> list[torch.Tensor]:
    """d of the real graph with itself after each aggregation step k = 1..K (K ≤ 2).

    k = 1: diag(Â X Xᵀ Â) = squared row norms of ÂX.
    k = 2: diag(Â Σ⁽¹⁾ Â)_i = Σ_{j,l ∈ N̂(i)} Â_ij Â_il Σ⁽¹⁾_jl, where Σ⁽¹⁾ (after L ReLU
    layers) is only needed on pairs of neighbours of a common node: O(Σ_i (deg_i + 1)²).
    """
    aggregated = adjacency @ features
    norms = [aggregated.norm(dim=1)]
    if spec.hops < 2:
        return norms
    coo = adjacency.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    weights = coo.values()
    starts = torch.searchsorted(rows, torch.arange(adjacency.shape[0] + 1, device=rows.device)).tolist()
    d1 = norms[0].clamp_min(1e-12)
    second = torch.zeros(adjacency.shape[0], dtype=features.dtype, device=features.device)
    for i in range(adjacency.shape[0]):
        nbr, w = cols[starts[i] : starts[i + 1]], weights[starts[i] : starts[i + 1]]
        total = torch.zeros((), dtype=features.dtype, device=features.device)
        for block in range(0, len(nbr), 2048):  # bounds memory on hub nodes
            part = slice(block, block + 2048)
            scale = d1[nbr[part]][:, None] * d1[nbr][None, :]
            sigma = arccos1(aggregated[nbr[part]] @ aggregated[nbr].T / scale, spec.layers) * scale
            total = total + w[part] @ sigma @ w
        second[i] = total
    norms.append(second.clamp_min(0).sqrt())
    return norms


def synthetic_kernel(adjacency: torch.Tensor, features: torch.Tensor, spec: KernelSpec):
    """Θ_SS of the synthetic graph with itself, and what `cross_kernel` needs of it: its
    features after the hops before the dot product, and its d at each hop after it."""
    before, after = hops_before_and_after(spec)
    propagated = propagate(adjacency, features, before)
    kernel = dot(propagated, propagated)
    norms = []
    for _ in range(after):
        kernel = aggregate(kernel, adjacency, adjacency)
        d = torch.sqrt(torch.diagonal(kernel.sigma).clamp_min(1e-24))
        norms.append(d)
        kernel = relu(kernel, d, d, spec.layers)
    if not after:
        d = propagated.norm(dim=1).clamp_min(1e-12)
        kernel = relu(kernel, d, d, spec.layers)
    return kernel.theta, SyntheticSide(propagated, norms)


@dataclass(frozen=True)
class SyntheticSide:
    propagated: torch.Tensor
    norms: list[torch.Tensor]


def cross_kernel(real: RealGraphSide, syn_adjacency: torch.Tensor, syn: SyntheticSide, rows=None):
    """Θ_RS: [num_real (or len(rows)), n_syn]. `syn` is what `synthetic_kernel` returned second."""
    spec = real.spec
    _, after = hops_before_and_after(spec)
    left = real.propagated if rows is None or after else real.propagated[rows]
    kernel = dot(left, syn.propagated)
    for k in range(after):
        kernel = aggregate(kernel, real.adjacency, syn_adjacency)
        kernel = relu(kernel, real.norms[k].clamp_min(1e-12), syn.norms[k], spec.layers)
    if not after:
        kernel = relu(kernel, left.norm(dim=1).clamp_min(1e-12), syn.propagated.norm(dim=1).clamp_min(1e-12), spec.layers)
    return kernel.theta if rows is None or not after else kernel.theta[rows]
