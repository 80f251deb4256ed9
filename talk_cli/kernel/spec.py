"""Which kernel and loss a run uses (the settings the CLI names), in a module that imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from talk_cli.errors import SettingsError

VARIANTS = ("propagate-first", "interleaved")
LOSSES = ("mse", "ce")  # the KRR loss on the real training labels: squared error or cross-entropy


@dataclass(frozen=True)
class KernelSpec:
    variant: str = "propagate-first"
    hops: int = 2  # K aggregation steps
    layers: int = 1  # L ReLU layers after each aggregation (propagate-first: after all of them)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise SettingsError(f"kernel must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.hops < 0 or self.layers < 0:
            raise SettingsError("hops and layers must be non-negative")
        if self.variant == "interleaved" and not 1 <= self.hops <= 2:
            raise SettingsError(
                "the interleaved kernel supports hops 1 or 2 (its real-side diagonal grows with every hop; "
                "with 0 hops both variants coincide: use propagate-first)"
            )
