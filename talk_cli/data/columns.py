"""Which columns of the node and edge tables `talk import` reads (a module of its own, light, so
that the CLI's options can name the defaults without importing pandas)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Columns:
    """Which columns of the two tables hold what."""

    id: str = "id"
    text: tuple[str, ...] = ("text",)
    label: str = "label"
    source: str = "src"
    target: str = "dst"
