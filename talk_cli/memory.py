"""Peak memory of this process, as reported next to timings (the reference cache, benchmarks)."""

from __future__ import annotations

import sys

try:
    import resource
except ImportError:  # Windows has no getrusage: the tool still runs there, with no peak to report
    resource = None


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB; None where the platform cannot say."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
