"""Settings fields that carry their own help text, so that the CLI derives its options from the
settings dataclasses and every default is written once, in the dataclass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any


def setting(default: Any, help: str, flag: str | None = None, choices: Sequence[str] | None = None, cli: bool = True) -> Any:
    """A dataclass field with the help text the CLI shows, where it is not `--field-name` its flag
    (e.g. "--soft-labels/--hard-labels"), and for a field that takes one of a fixed set of values,
    that set (the CLI lists it in --help and refuses anything else). `cli=False` makes it a recipe
    key only: a setting that was measured and rejected, or an expert's knob that a recipe sets,
    kept out of the command line's options (docs/commands.md lists them)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": tuple(choices) if choices else None, "cli": cli})
