"""TaLK's inner loop: train the LM together with a small GCN on the synthetic set, so that the
outer loop sees the real graph through the LM that training on the synthetic set produces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.nn import DenseGCNConv

from talk_cli.encode.lm import LanguageModel, encode_embeddings

GCN_HIDDEN = 64
GCN_LEARNING_RATE = 0.01


class DenseGCN(torch.nn.Module):
    """The inner loop's classifier: two PyG dense GCN layers on the synthetic graph."""

    def __init__(self, in_dim: int, classes: int, hidden: int = GCN_HIDDEN):
        super().__init__()
        self.first = DenseGCNConv(in_dim, hidden)
        self.second = DenseGCNConv(hidden, classes)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.second(F.relu(self.first(x, adjacency)), adjacency).squeeze(0)


def train_lm_and_gcn(
    lm: LanguageModel,
    trained: list[torch.nn.Parameter],
    gcn: DenseGCN,
    embeddings: torch.Tensor,
    mask: torch.Tensor,
    adjacency: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    lm_lr: float,
) -> None:
    """`steps` Adam steps of the LM's `trained` parameters (every weight, or its LoRA adapters)
    and the GCN on the synthetic graph (its texts are fixed here). `targets`: class ids, or a
    float [n, C] distribution per node (soft labels)."""
    for parameter in trained:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": trained, "lr": lm_lr}, {"params": gcn.parameters(), "lr": GCN_LEARNING_RATE}])
    for _ in range(steps):  # in eval mode, as the outer loop reads the LM: no dropout
        logits = gcn(encode_embeddings(lm, embeddings, mask), adjacency)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for parameter in trained:
        parameter.requires_grad_(False)
