"""Coreset baselines: real training nodes chosen per class, kept with their real text and
the subgraph they induce, written as ordinary bundles so they are evaluated like TaLK's.

- random: a seeded uniform sample of the class's training nodes;
- herding: greedy herding (Welling, 2009): each pick brings the running mean of the chosen
  features closest to the class mean;
- kcenter: greedy k-center: start at the node nearest the class mean, then repeatedly take
  the node farthest from everything chosen so far.
"""

from __future__ import annotations

import torch

from talk_cli.data.tag import TAG
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import allocate, initial_embeddings, synthetic_size
from talk_cli.distill.talk import DistillOutcome
from talk_cli.encode.lm import LanguageModel, encode_embeddings

CORESETS = ("random", "herding", "kcenter")


def herding(points: torch.Tensor, k: int) -> list[int]:
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


def kcenter(points: torch.Tensor, k: int) -> list[int]:
    chosen = [int((points - points.mean(dim=0)).norm(dim=1).argmin())]
    distance = (points - points[chosen[0]]).norm(dim=1)
    while len(chosen) < k:
        far = int(distance.argmax())
        chosen.append(far)
        distance = torch.minimum(distance, (points - points[far]).norm(dim=1))
    return chosen


def select(method: str, tag: TAG, features: torch.Tensor, counts: list[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for cls, k in enumerate(counts):
        if k == 0:
            continue
        members = torch.nonzero(tag.train_mask & (tag.labels == cls)).flatten()
        if method == "random":
            local = torch.randperm(len(members), generator=generator)[:k].tolist()
        else:
            local = (herding if method == "herding" else kcenter)(features[members].double(), k)
        picked += members[local].tolist()
    return torch.tensor(picked, dtype=torch.long)


def induced_adjacency(tag: TAG, nodes: torch.Tensor) -> torch.Tensor:
    position = torch.full((tag.num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(len(nodes))
    src, dst = tag.edge_index
    keep = (position[src] >= 0) & (position[dst] >= 0)
    adjacency = torch.zeros(len(nodes), len(nodes))
    adjacency[position[src[keep]], position[dst[keep]]] = 1.0
    return adjacency


def coreset(method: str, tag: TAG, lm: LanguageModel, features: torch.Tensor, settings: DistillSettings) -> DistillOutcome:
    """Pick the coreset and build what a bundle stores. Texts keep `settings.max_length` tokens,
    the length the real features were encoded with, so the stored features are the real ones."""
    train_counts = tag.class_counts(tag.train_mask)
    n_syn = synthetic_size(int(tag.train_mask.sum()), sum(c > 0 for c in train_counts), settings.ratio, settings.size)
    nodes = select(method, tag, features, allocate(train_counts, n_syn), settings.seed)
    embeddings, mask = initial_embeddings([tag.texts[i] for i in nodes], lm, settings.max_length, padding="longest")
    lm.model.eval()
    with torch.no_grad():
        pooled = encode_embeddings(lm, embeddings.to(lm.embeddings.weight.device), mask.to(lm.embeddings.weight.device))
    return DistillOutcome(
        embeddings=embeddings,
        attention_mask=mask,
        adjacency=induced_adjacency(tag, nodes),
        labels=tag.labels[nodes],
        soft_labels=None,
        features=pooled.float().cpu(),
        seed_nodes=nodes,
        best_step=0,
        best_val_accuracy=float("nan"),
    )
