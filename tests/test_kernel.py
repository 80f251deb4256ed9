"""The graph-aware NTK against a dense float64 reference on the disjoint union of both graphs."""

from __future__ import annotations

import math

import pytest
import torch

from talk_cli.errors import SettingsError
from talk_cli.graph import normalized_adjacency_dense, normalized_adjacency_sparse
from talk_cli.kernel import (
    KernelSpec,
    RealGraphSide,
    cross_kernel,
    krr_loss,
    krr_predict,
    synthetic_kernel,
)
from talk_cli.kernel.sntk import RHO_LIMIT


def random_graph(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    upper = torch.triu((torch.rand(n, n, generator=g) < p).double(), diagonal=1)
    return upper + upper.T


def reference_ntk(a_hat: torch.Tensor, x: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """The recursion written out densely over every pair of nodes of one graph, in float64."""

    def relu(sigma, theta):
        d = torch.sqrt(torch.diagonal(sigma))
        scale = torch.outer(d, d)
        rho = (sigma / scale).clamp(-RHO_LIMIT, RHO_LIMIT)  # the clamp is part of the kernel's definition
        new_sigma = scale * (rho * (math.pi - torch.arccos(rho)) + torch.sqrt(1 - rho**2)) / math.pi
        return new_sigma, theta * (math.pi - torch.arccos(rho)) / math.pi + new_sigma

    if spec.variant == "propagate-first":
        for _ in range(spec.hops):
            x = a_hat @ x
        sigma = theta = x @ x.T
        for _ in range(spec.layers):
            sigma, theta = relu(sigma, theta)
        return theta
    sigma = theta = x @ x.T
    for _ in range(spec.hops):
        sigma, theta = a_hat @ sigma @ a_hat.T, a_hat @ theta @ a_hat.T
        for _ in range(spec.layers):
            sigma, theta = relu(sigma, theta)
    return theta


CASES = [(v, k, layers) for v in ("propagate-first", "interleaved") for k in (1, 2) for layers in (1, 2)] + [("propagate-first", 3, 1)]


@pytest.mark.parametrize("variant, hops, layers", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_dense_reference(variant, hops, layers, seed):
    g = torch.Generator().manual_seed(seed)
    n_real, n_syn, h = 30, 6, 5
    real_adj = random_graph(n_real, 0.15, g)
    syn_adj = torch.rand(n_syn, n_syn, generator=g, dtype=torch.float64) * random_graph(n_syn, 0.5, g)
    syn_adj = (syn_adj + syn_adj.T) / 2
    x_real = torch.randn(n_real, h, generator=g, dtype=torch.float64)
    x_syn = torch.randn(n_syn, h, generator=g, dtype=torch.float64)
    spec = KernelSpec(variant=variant, hops=hops, layers=layers)

    # Reference: both graphs as one block-diagonal graph, every pair computed densely.
    a_real = normalized_adjacency_dense(real_adj)
    a_syn = normalized_adjacency_dense(syn_adj)
    union = torch.block_diag(a_real, a_syn)
    full = reference_ntk(union, torch.cat([x_real, x_syn]), spec)

    edge_index = real_adj.nonzero().t()
    sparse = normalized_adjacency_sparse(edge_index, n_real, dtype=torch.float64)
    assert torch.allclose(sparse.to_dense(), a_real)
    real = RealGraphSide(sparse, x_real, spec)
    k_ss, state = synthetic_kernel(a_syn, x_syn, spec)
    k_rs = cross_kernel(real, a_syn, state)
    assert torch.allclose(k_ss, full[n_real:, n_real:], atol=1e-9, rtol=1e-5)  # the ρ clamp costs ~1e-6 relative per layer
    assert torch.allclose(k_rs, full[:n_real, n_real:], atol=1e-9, rtol=1e-5)  # the ρ clamp costs ~1e-6 relative per layer
    rows = torch.tensor([3, 0, 17])
    assert torch.allclose(cross_kernel(real, a_syn, state, rows=rows), k_rs[rows])


@pytest.mark.parametrize("variant", ["propagate-first", "interleaved"])
def test_synthetic_kernel_is_symmetric_psd(variant):
    g = torch.Generator().manual_seed(3)
    adj = torch.rand(12, 12, generator=g, dtype=torch.float64)
    adj = ((adj + adj.T) / 2).fill_diagonal_(0)
    k_ss, _ = synthetic_kernel(normalized_adjacency_dense(adj), torch.randn(12, 7, generator=g, dtype=torch.float64), KernelSpec(variant, 2, 2))
    assert torch.allclose(k_ss, k_ss.T, atol=1e-12)
    assert torch.linalg.eigvalsh(k_ss).min() > -1e-9 * k_ss.diagonal().max()


@pytest.mark.parametrize("variant", ["propagate-first", "interleaved"])
def test_gradcheck_kernel_and_krr(variant):
    g = torch.Generator().manual_seed(5)
    n_real, n_syn, h, c = 12, 4, 3, 2
    real_adj = random_graph(n_real, 0.3, g)
    real = RealGraphSide(
        normalized_adjacency_sparse(real_adj.nonzero().t(), n_real, dtype=torch.float64),
        torch.randn(n_real, h, generator=g, dtype=torch.float64),
        KernelSpec(variant, 2, 1),
    )
    labels = torch.arange(n_real) % c
    x_syn = torch.randn(n_syn, h, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(n_syn, n_syn, generator=g, dtype=torch.float64, requires_grad=True)
    y_syn = torch.randn(n_syn, c, generator=g, dtype=torch.float64, requires_grad=True)

    def loss(x, w, y):
        adj = normalized_adjacency_dense(((w + w.T) / 2) * (1 - torch.eye(n_syn, dtype=w.dtype)))
        k_ss, state = synthetic_kernel(adj, x, real.spec)
        return krr_loss(krr_predict(cross_kernel(real, adj, state), k_ss, y, 1e-2), labels, c)

    assert torch.autograd.gradcheck(loss, (x_syn, weights, y_syn), eps=1e-6, atol=1e-5)


def test_krr_recovers_labels_of_the_synthetic_set_itself():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)
    k = x @ x.T
    y = torch.eye(5, dtype=torch.float64)
    assert torch.allclose(krr_predict(k, k, y, 1e-9), y, atol=1e-5)
    assert krr_loss(krr_predict(k, k, y, 1e-9), torch.arange(5), 5) < 1e-8


@pytest.mark.parametrize("variant, hops", [("interleaved", 3), ("interleaved", 0), ("other", 1)])
def test_bad_kernel_settings(variant, hops):
    with pytest.raises(SettingsError):
        KernelSpec(variant, hops, 1)
