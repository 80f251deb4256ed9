"""Stage 3: the graph-aware NTK between real and synthetic graphs, and kernel ridge regression."""

from talk_cli.kernel.krr import LOSSES, krr_loss, krr_predict, krr_weights
from talk_cli.kernel.sntk import (
    KERNEL_DTYPE,
    VARIANTS,
    KernelSpec,
    RealGraphSide,
    RowShard,
    cross_kernel,
    synthetic_kernel,
)

__all__ = [
    "KERNEL_DTYPE",
    "LOSSES",
    "VARIANTS",
    "KernelSpec",
    "RealGraphSide",
    "RowShard",
    "cross_kernel",
    "krr_loss",
    "krr_predict",
    "krr_weights",
    "synthetic_kernel",
]
