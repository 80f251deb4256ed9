"""Stage 3: the graph-aware NTK between real and synthetic graphs, and kernel ridge regression."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "LOSSES": "talk_cli.kernel.spec",
    "krr_loss": "talk_cli.kernel.krr",
    "krr_predict": "talk_cli.kernel.krr",
    "krr_weights": "talk_cli.kernel.krr",
    "KERNEL_DTYPE": "talk_cli.kernel.sntk",
    "VARIANTS": "talk_cli.kernel.spec",
    "KernelSpec": "talk_cli.kernel.spec",
    "RealGraphSide": "talk_cli.kernel.sntk",
    "RowShard": "talk_cli.kernel.sntk",
    "cross_kernel": "talk_cli.kernel.sntk",
    "synthetic_kernel": "talk_cli.kernel.sntk",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
