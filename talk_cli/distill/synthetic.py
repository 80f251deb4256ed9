"""The synthetic graph being learned: token-embedding sequences, structure and labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from talk_cli.data.tag import TAG
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError


def synthetic_size(num_train: int, num_classes_present: int, ratio: float | None, size: int | None) -> int:
    """n_syn = max(#classes, round(ratio × |train|)), or `size` when given."""
    if size is not None:
        if size < num_classes_present:
            raise SettingsError(
                f"--size {size} is below the number of classes with training nodes ({num_classes_present}); "
                "every class needs at least one synthetic node"
            )
        return size
    return max(num_classes_present, round(ratio * num_train))  # type: ignore[operator]


def allocate(train_counts: list[int], total: int) -> list[int]:
    """Synthetic nodes per class, proportional to training counts (largest remainder), at
    least one for every class that has training nodes, none for classes without."""
    present = [c for c, count in enumerate(train_counts) if count > 0]
    share = torch.tensor([train_counts[c] for c in present], dtype=torch.float64)
    exact = share / share.sum() * total
    alloc = exact.floor().long().clamp(min=1)
    while alloc.sum() < total:  # hand out the remainder by largest fractional part
        alloc[torch.argmax(exact - alloc)] += 1
    while alloc.sum() > total:  # the floor of 1 overshot: take from the best-served class
        alloc[torch.argmax(torch.where(alloc > 1, alloc - exact, torch.tensor(-1e9, dtype=torch.float64)))] -= 1
    counts = [0] * len(train_counts)
    for c, n in zip(present, alloc.tolist()):
        counts[c] = n
    return counts


def pick_seed_nodes(tag: TAG, features: torch.Tensor, counts: list[int], seed: int) -> torch.Tensor:
    """For each class, the training nodes nearest to k-means centres of the class (k = its count)."""
    chosen = []
    for cls, k in enumerate(counts):
        if k == 0:
            continue
        members = torch.nonzero(tag.train_mask & (tag.labels == cls)).flatten()
        points = features[members].double().numpy()
        centres = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points).cluster_centers_
        distances = torch.cdist(torch.from_numpy(centres), torch.from_numpy(points))
        taken: set[int] = set()
        for row in distances:
            for index in torch.argsort(row).tolist():  # nearest member not already taken
                if index not in taken:
                    taken.add(index)
                    chosen.append(int(members[index]))
                    break
    return torch.tensor(chosen, dtype=torch.long)


def initial_embeddings(
    texts: list[str], lm: LanguageModel, seq_len: int, padding: str = "max_length"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `seq_len` input embeddings of each text, and a mask of the positions that
    hold a real token. Texts are padded to `seq_len` ("max_length") or to the longest of them
    ("longest"), and the padding is masked."""
    tokens = lm.tokenizer(texts, truncation=True, max_length=seq_len, padding=padding, return_tensors="pt")
    with torch.no_grad():
        embeddings = lm.embeddings(tokens["input_ids"].to(lm.embeddings.weight.device)).float()
    return embeddings.cpu(), tokens["attention_mask"].long()


def knn_adjacency(features: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetric 0/1 graph joining each node to its k most cosine-similar others."""
    n = features.shape[0]
    k = min(k, n - 1)
    adjacency = torch.zeros(n, n, dtype=features.dtype, device=features.device)
    if k <= 0:
        return adjacency
    normalised = F.normalize(features, dim=1)
    similarity = normalised @ normalised.T
    similarity.fill_diagonal_(-float("inf"))
    neighbours = similarity.topk(k, dim=1).indices
    adjacency.scatter_(1, neighbours, 1.0)
    return torch.maximum(adjacency, adjacency.T)


def learned_adjacency(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric, non-negative, zero-diagonal weights from unconstrained logits."""
    symmetric = (logits + logits.T) / 2
    off_diagonal = 1 - torch.eye(logits.shape[0], dtype=logits.dtype, device=logits.device)
    return torch.sigmoid(symmetric) * off_diagonal
