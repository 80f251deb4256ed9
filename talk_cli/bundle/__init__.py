"""Stage 5: the distilled-graph bundle (docs/bundle-format.md)."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "Bundle": "talk_cli.bundle.bundle",
    "DatasetInfo": "talk_cli.bundle.bundle",
    "DistillationInfo": "talk_cli.bundle.bundle",
    "LMInfo": "talk_cli.bundle.bundle",
    "load_bundle": "talk_cli.bundle.bundle",
    "write_bundle": "talk_cli.bundle.bundle",
    "BundleError": "talk_cli.bundle.errors",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
