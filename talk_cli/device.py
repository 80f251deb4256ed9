"""Device and dtype selection shared by every stage, and the one table of dtype names."""

from __future__ import annotations

from typing import NamedTuple

import torch

from talk_cli.errors import SettingsError


class DType(NamedTuple):
    torch: torch.dtype
    safetensors: str  # the code safetensors reports for it

    @property
    def size(self) -> int:
        return self.torch.itemsize


# Every dtype the tool names: in files (bundle tensors, features cache) and for --dtype.
DTYPES = {
    "float32": DType(torch.float32, "F32"),
    "float16": DType(torch.float16, "F16"),
    "bfloat16": DType(torch.bfloat16, "BF16"),
    "int64": DType(torch.int64, "I64"),
}
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")


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
    if name not in COMPUTE_DTYPES:
        raise SettingsError(f"--dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
    return DTYPES[name].torch
