"""Device and dtype selection shared by every stage."""

from __future__ import annotations

import torch

from talk_cli.errors import SettingsError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(choice: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cuda' without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SettingsError("--device cuda was asked for, but no CUDA GPU is available (use --device auto or cpu)")
    if choice not in ("cpu", "cuda"):
        raise SettingsError(f"--device must be auto, cpu or cuda, got {choice!r}")
    return torch.device(choice)


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise SettingsError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]
