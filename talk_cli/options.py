"""Settings fields that carry their own help text, so that the CLI derives its options from the
settings dataclasses and every default is written once, in the dataclass."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str, flag: str | None = None) -> Any:
    """A dataclass field with the help text the CLI shows and, where it is not `--field-name`,
    its flag (e.g. "--soft-labels/--hard-labels")."""
    return field(default=default, metadata={"help": help, "flag": flag})
