"""Stage 5: the distilled-graph bundle (docs/bundle-format.md)."""

from talk_cli.bundle.bundle import Bundle, DatasetInfo, DistillationInfo, LMInfo, load_bundle, write_bundle
from talk_cli.bundle.errors import BundleError

__all__ = ["Bundle", "BundleError", "DatasetInfo", "DistillationInfo", "LMInfo", "load_bundle", "write_bundle"]
