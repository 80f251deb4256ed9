"""The text-attributed graph (TAG) every stage of the pipeline consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class TAG:
    """A text-attributed graph with labels and a train/val/test split.

    `edge_index` is undirected in PyG's convention: both directions of every edge are
    present, with no self-loops and no duplicates, sorted by (source, target).
    """

    name: str
    texts: list[str]
    labels: torch.Tensor  # int64 [num_nodes]
    label_names: list[str]
    edge_index: torch.Tensor  # int64 [2, num_directed_edges]
    train_mask: torch.Tensor  # bool [num_nodes]
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    split_description: str
    content_hash: str  # sha256 of texts, labels, label names and edges (not the split)
    notes: dict[str, int] = field(default_factory=dict)  # counts of things fixed on load

    @property
    def num_nodes(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def num_edges(self) -> int:
        """Number of undirected edges."""
        return self.edge_index.shape[1] // 2

    def class_counts(self, mask: torch.Tensor | None = None) -> list[int]:
        labels = self.labels if mask is None else self.labels[mask]
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def to_pyg(self):
        """The graph as a `torch_geometric.data.Data` (texts kept as a Python list)."""
        from torch_geometric.data import Data

        return Data(
            edge_index=self.edge_index,
            y=self.labels,
            train_mask=self.train_mask,
            val_mask=self.val_mask,
            test_mask=self.test_mask,
            texts=self.texts,
            num_nodes=self.num_nodes,
        )


def undirected_edge_index(src: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, dict[str, int]]:
    """Symmetrise directed pairs, dropping self-loops and merging repeated pairs.

    Returns the sorted undirected `edge_index` and counts of what was dropped, so the
    loader can report it rather than change the graph silently.
    """
    self_loop = src == dst
    src, dst = src[~self_loop], dst[~self_loop]
    low, high = torch.minimum(src, dst), torch.maximum(src, dst)
    keys = torch.unique(low * num_nodes + high)  # one key per undirected pair, sorted
    low, high = keys // num_nodes, keys % num_nodes
    both = torch.cat([torch.stack([low, high]), torch.stack([high, low])], dim=1)
    order = torch.argsort(both[0] * num_nodes + both[1])
    notes = {
        "self_loops_dropped": int(self_loop.sum()),
        "repeated_edges_merged": int(src.numel() - keys.numel()),
    }
    return both[:, order].contiguous(), notes


def content_hash(texts: list[str], labels: torch.Tensor, label_names: list[str], edge_index: torch.Tensor) -> str:
    """A sha256 that changes whenever the graph's content does (the split excluded)."""
    digest = hashlib.sha256()
    for part in (*label_names, "\x00labels", *texts):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    digest.update(labels.to(torch.int64).numpy().tobytes())
    digest.update(edge_index.to(torch.int64).numpy().tobytes())
    return digest.hexdigest()
