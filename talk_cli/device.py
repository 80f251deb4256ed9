"""Device and dtype selection shared by every stage, and the one table of dtype names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from talk_cli.errors import SettingsError

if TYPE_CHECKING:
    import torch


class DType(NamedTuple):
    name: str  # torch's name of it
    safetensors: str  # the code safetensors reports for it
    size: int  # bytes per element

    @property
    def torch(self) -> torch.dtype:
        import torch  # here, not above: the CLI's options name dtypes before torch is needed

        return getattr(torch, self.name)


# Every dtype the tool names: in files (bundle tensors, features cache) and for --dtype.
DTYPES = {
    "float32": DType("float32", "F32", 4),
    "float16": DType("float16", "F16", 2),
    "bfloat16": DType("bfloat16", "BF16", 2),
    "int64": DType("int64", "I64", 8),
}
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")


def processes_on_this_machine() -> int:
    """How many processes torchrun started on this machine (its LOCAL_WORLD_SIZE); 1 without torchrun."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def resolve_device(choice: str) -> torch.device:
    """'auto' picks CUDA when this machine has a GPU for each of its processes (NCCL gives every
    rank a GPU of its own), else the CPU; 'cuda' without them is an error."""
    import torch

    if choice not in DEVICES:
        raise SettingsError(f"--device must be auto, cpu or cuda, got {choice!r}")
    if choice == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if choice == "cuda":
            raise SettingsError("--device cuda was asked for, but no CUDA GPU is available (use --device auto or cpu)")
        return torch.device("cpu")
    processes, gpus = processes_on_this_machine(), torch.cuda.device_count()
    if gpus >= processes:
        return torch.device("cuda")
    if choice == "cuda":
        raise SettingsError(
            f"--device cuda gives each process a GPU of its own, but torchrun started {processes} processes on this "
            f"machine and it has {gpus} GPU(s) (use --nproc-per-node {gpus}, or --device cpu)"
        )
    return torch.device("cpu")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in COMPUTE_DTYPES:
        raise SettingsError(f"--dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
    return DTYPES[name].torch


def device_name(device: torch.device) -> str:
    """What the work ran on, in words: the GPU's name, else the CPU model (as /proc/cpuinfo or
    the platform names it)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def environment(device: torch.device) -> dict[str, str]:
    """The device and the library versions a result was computed with (bundle manifests record it)."""
    import platform

    import torch
    import transformers

    from talk_cli.version import __version__

    return {
        "device": device.type,
        "device_name": device_name(device),
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a TorchVersion, which YAML cannot write
        "transformers": transformers.__version__,
        "talk_cli": __version__,
    }
