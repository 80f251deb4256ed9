"""talk_cli: distil text-attributed graphs with TaLK."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from talk_cli.bundle import Bundle

from talk_cli.version import __version__

__all__ = ["__version__", "load_bundle"]

# The kernel and the evaluation models multiply by sparse CSR matrices, which torch flags as
# "beta" on every construction; the operation we use (CSR @ dense) is stable, so the notice is noise.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and verify a bundle; see `talk_cli.bundle.load_bundle` (imported lazily so that
    `import talk_cli` stays light)."""
    from talk_cli.bundle import load_bundle as load

    return load(path)
