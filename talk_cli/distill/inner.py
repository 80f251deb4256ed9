"""TaLK's inner loop: train the LM together with a GCN on the synthetic set, so that the outer loop
sees the real graph through the LM that training on the synthetic set produces.

The loop fine-tunes its own copy of the pretrained LM (every weight, or LoRA adapters), and keeps
a table of every real node's features as last encoded: a round re-encodes a batch of training
nodes with the tuned LM (batch-wise refresh, docs/method.md), not the whole graph. Its GCN is the
model that judges the bundle (`talk evaluate`'s, with its hidden units, dropout and rate), trained
by the step the joint protocol trains a bundle with (`gnn.train.tokens_step`). Bundles are read
with the pretrained LM, which nothing here changes."""

from __future__ import annotations

from typing import Any

import torch

from talk_cli.data.tag import TAG
from talk_cli.distill.settings import DistillSettings
from talk_cli.encode.encoder import encode_texts
from talk_cli.encode.lm import LanguageModel
from talk_cli.encode.lora import trainable_copy, trained_parameters
from talk_cli.encode.settings import EncodeSettings
from talk_cli.gnn.models import build_model
from talk_cli.gnn.settings import EvalSettings
from talk_cli.gnn.train import Training, tokens_step

# The GCN that judges a bundle, as `talk evaluate` trains it: the inner loop trains the same one.
JUDGE = EvalSettings()


class InnerLoop:
    """The inner loop's state: the tuned LM (frozen between rounds, so the outer loop's backward
    reaches the tokens only), its GCN, and the real features table."""

    def __init__(self, lm: LanguageModel, tag: TAG, real_features: torch.Tensor, settings: DistillSettings, device: torch.device):
        self.pretrained, self.tag, self.settings, self.device = lm, tag, settings, device
        self.tuned = self.fresh_lm()
        self.gcn = self.fresh_gcn()
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

    def fresh_gcn(self) -> torch.nn.Module:
        gcn = build_model(JUDGE.architecture, self.pretrained.identity.hidden_size, self.tag.num_classes, JUDGE.hidden, JUDGE.dropout)
        return gcn.to(self.device)

    def restart(self, step: int) -> None:
        """`inner_restart`: the pretrained LM and a fresh GCN, which depends on the step, not on the
        random generator's history."""
        self.tuned = self.fresh_lm()
        with torch.random.fork_rng():
            torch.manual_seed(self.settings.seed + step)
            self.gcn = self.fresh_gcn()

    def train(self, embeddings: torch.Tensor, mask: torch.Tensor, synthetic: Training) -> None:
        """`inner_steps` Adam steps of the LM's trained parameters (every weight, or its LoRA
        adapters) and the GCN on the synthetic graph, its texts fixed. The LM stays in eval mode, as
        the outer loop reads it (no dropout); the GCN trains as `talk evaluate` trains it."""
        for parameter in self.trained:
            parameter.requires_grad_(True)
        optimizer = torch.optim.Adam([{"params": self.trained, "lr": self.settings.inner_lr}, {"params": self.gcn.parameters(), "lr": JUDGE.lr}])
        self.gcn.train()
        for _ in range(self.settings.inner_steps):
            tokens_step(self.tuned, self.gcn, synthetic, embeddings, mask, optimizer)
        for parameter in self.trained:
            parameter.requires_grad_(False)

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
