"""Coreset baselines: real training nodes chosen per class, kept with their real text and
the subgraph they induce, written as ordinary bundles so they are evaluated like TaLK's.

- random: a seeded uniform sample of the class's training nodes;
- herding: greedy herding (Welling, 2009): each pick brings the running mean of the chosen
  features closest to the class mean;
- kcenter: greedy k-center: start at the node nearest the class mean, then repeatedly take
  the node farthest from everything chosen so far.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from talk_cli.data.tag import TAG


def uniform(points: torch.Tensor, k: int, generator: torch.Generator | None = None) -> list[int]:
    return torch.randperm(len(points), generator=generator)[:k].tolist()


def herding(points: torch.Tensor, k: int, generator: torch.Generator | None = None) -> list[int]:
    target = points.mean(dim=0)
    chosen: list[int] = []
    total = torch.zeros_like(target)
    for size in range(1, k + 1):
        gaps = ((total + points) / size - target).norm(dim=1)
        gaps[chosen] = float("inf")
        best = int(gaps.argmin())
        chosen.append(best)
        total += points[best]
    return chosen


def kcenter(points: torch.Tensor, k: int, generator: torch.Generator | None = None) -> list[int]:
    chosen = [int((points - points.mean(dim=0)).norm(dim=1).argmin())]
    distance = (points - points[chosen[0]]).norm(dim=1)
    while len(chosen) < k:
        far = int(distance.argmax())
        chosen.append(far)
        distance = torch.minimum(distance, (points - points[far]).norm(dim=1))
    return chosen


def select(picker: Callable, tag: TAG, features: torch.Tensor, counts: list[int], seed: int) -> torch.Tensor:
    """`counts[c]` training nodes of each class c, chosen by `picker` among the class's features."""
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls, k in enumerate(counts):
        if k == 0:
            continue
        members = torch.nonzero(tag.train_mask & (tag.labels == cls)).flatten()
        picked += members[picker(features[members].double(), k, generator)].tolist()
    return torch.tensor(picked, dtype=torch.long)


def induced_adjacency(tag: TAG, nodes: torch.Tensor) -> torch.Tensor:
    position = torch.full((tag.num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(len(nodes))
    src, dst = tag.edge_index
    keep = (position[src] >= 0) & (position[dst] >= 0)
    adjacency = torch.zeros(len(nodes), len(nodes))
    adjacency[position[src[keep]], position[dst[keep]]] = 1.0
    return adjacency
