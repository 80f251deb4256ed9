"""Stage 3: the graph-aware NTK between real and synthetic graphs, and kernel ridge regression."""

from talk_cli.kernel.krr import LOSSES, krr_loss, krr_predict
from talk_cli.kernel.sntk import (
    VARIANTS,
    KernelSpec,
    RealGraphSide,
    cross_kernel,
    normalized_adjacency_dense,
    normalized_adjacency_sparse,
    synthetic_kernel,
)

__all__ = [
    "LOSSES",
    "VARIANTS",
    "KernelSpec",
    "RealGraphSide",
    "cross_kernel",
    "krr_loss",
    "krr_predict",
    "normalized_adjacency_dense",
    "normalized_adjacency_sparse",
    "synthetic_kernel",
]
