"""Several processes launched by `torchrun`: which one this is, and the barriers the encoder
needs. Without torchrun (no WORLD_SIZE in the environment) there is one process and nothing here
touches torch.distributed.

    torchrun --nproc-per-node 2 -m talk_cli encode --dataset cora

Encoding is split by chunk (docs/encode.md); distill and evaluate encode first, in parallel, and
then run on rank 0 alone.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> None:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), once per process."""
    if not launched() or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(dist.destroy_process_group)


def rank() -> int:
    """This process's rank (torchrun's RANK, before and after joining the group); 0 alone."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
