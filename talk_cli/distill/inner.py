"""TaLK's inner loop: train the LM together with a small GCN on the synthetic set, so that the
outer loop sees the real graph through the LM that training on the synthetic set produces.

The loop fine-tunes its own copy of the pretrained LM (every weight, or LoRA adapters), and keeps
a table of every real node's features as last encoded: a round re-encodes a batch of training
nodes with the tuned LM (batch-wise refresh, docs/method.md), not the whole graph. Bundles are
read with the pretrained LM, which nothing here changes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.nn import DenseGCNConv

from talk_cli.data.tag import TAG
from talk_cli.distill.settings import DistillSettings
from talk_cli.encode.encoder import encode_texts
from talk_cli.encode.lm import LanguageModel, encode_embeddings
from talk_cli.encode.lora import trainable_copy, trained_parameters
from talk_cli.encode.settings import EncodeSettings

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


class InnerLoop:
    """The inner loop's state: the tuned LM (frozen between rounds, so the outer loop's backward
    reaches the tokens only), its GCN, and the real features table."""

    def __init__(self, lm: LanguageModel, tag: TAG, real_features: torch.Tensor, settings: DistillSettings, device: torch.device):
        self.pretrained, self.tag, self.settings, self.device = lm, tag, settings, device
        self.tuned = self.fresh_lm()
        self.gcn = DenseGCN(lm.identity.hidden_size, tag.num_classes).to(device)
        self.feature_table = real_features.clone()

    def fresh_lm(self) -> LanguageModel:
        """A trainable copy of the pretrained LM, frozen until a round trains it."""
        settings = self.settings
        tuned = trainable_copy(self.pretrained, self.device, settings.lora_rank, settings.lora_alpha, settings.lora_dropout)
        self.trained = trained_parameters(tuned)
        for parameter in self.trained:
            parameter.requires_grad_(False)
        tuned.model.eval()
        return tuned

    def restart(self, step: int) -> None:
        """`inner_restart`: the pretrained LM and a fresh GCN, which depends on the step, not on the
        random generator's history."""
        self.tuned = self.fresh_lm()
        with torch.random.fork_rng():
            torch.manual_seed(self.settings.seed + step)
            self.gcn = DenseGCN(self.pretrained.identity.hidden_size, self.tag.num_classes).to(self.device)

    def train(self, embeddings: torch.Tensor, mask: torch.Tensor, adjacency: torch.Tensor, targets: torch.Tensor) -> None:
        train_lm_and_gcn(self.tuned, self.trained, self.gcn, embeddings, mask, adjacency, targets, self.settings.inner_steps, self.settings.inner_lr)

    def refresh(self, train_nodes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Re-encode `inner_refresh` training nodes drawn at random (every real node when 0) with
        the tuned LM and write them into the table; returns them. The other nodes keep the
        features of the LM that last encoded them: a loss term's neighbours may lag behind."""
        size = self.settings.inner_refresh
        if size == 0:
            nodes = torch.arange(self.tag.num_nodes)
        else:
            nodes = train_nodes[torch.randperm(len(train_nodes), generator=generator)[:size]]
        encoded, _ = encode_texts([self.tag.texts[i] for i in nodes.tolist()], self.tuned, EncodeSettings(max_length=self.settings.max_length), self.device)
        self.feature_table[nodes] = encoded
        return nodes

    def state_dict(self) -> dict[str, Any]:
        return {"lm": self.tuned.model.state_dict(), "gcn": self.gcn.state_dict(), "feature_table": self.feature_table}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tuned.model.load_state_dict(state["lm"])
        self.gcn.load_state_dict(state["gcn"])
        self.feature_table = state["feature_table"]
