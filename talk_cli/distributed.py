"""Several processes launched by `torchrun`: which one this is, how the real graph's rows are
shared out, and the few collectives the encoder and the outer loop need. Without torchrun (no
WORLD_SIZE in the environment) there is one process and nothing here touches torch.distributed.

    torchrun --nproc-per-node 2 -m talk_cli distill --dataset cora --ratio 0.01 --out cora-1pct

Encoding is split by chunk (docs/encode.md); the kernel methods' outer loop shards the real graph
by rows and the synthetic set's LM pass by chunk (docs/scale.md); coresets and evaluation run
on rank 0 alone.
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


def row_range(num_rows: int) -> tuple[int, int]:
    """The contiguous rows [start, stop) of `num_rows` that this rank holds: equal shares, the
    first `num_rows % N` ranks one row more."""
    share, extra = divmod(num_rows, world_size())
    start = rank() * share + min(rank(), extra)
    return start, start + share + (rank() < extra)


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every rank, in place (itself in one process)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def gather_rows(local: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The whole [num_rows, ...] tensor from every rank's `row_range` rows. Each row is copied
    from the one rank that holds it (a sum with zeros elsewhere), so the result is exact."""
    if not dist.is_initialized():
        return local
    whole = local.new_zeros((num_rows, *local.shape[1:]))
    start, stop = row_range(num_rows)
    whole[start:stop] = local
    return sum_over_ranks(whole)


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (a Ctrl-C seen by one rank stops them all at
    the same step)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def from_rank_0(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's `tensor` on every rank, in place: for choices (such as k-means seeds) whose
    floating-point path may differ between processes with different thread counts."""
    if dist.is_initialized():
        dist.broadcast(tensor, src=0)
    return tensor
