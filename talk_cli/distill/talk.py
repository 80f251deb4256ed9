"""TaLK: learn synthetic token-embedding sequences by kernel ridge regression under the
graph-aware NTK, with batch-wise gradient injection through the LM (docs/method.md).

One outer step:
  1. X_s = pool(LM(E)) for all synthetic nodes, without autograd;
  2. the KRR loss of predicting a batch of real training labels from (X_s, A_s, Y_s) under
     the kernel, differentiated with respect to X_s (and A_s, Y_s when learned);
  3. gradient injection: for each chunk of synthetic nodes, recompute pool(LM(E_chunk))
     with autograd and back-propagate that chunk of ∂loss/∂X_s into E.
Only one chunk's LM graph is alive at a time, so memory does not grow with n_syn.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric.nn import DenseGCNConv

from talk_cli.data.tag import TAG
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import (
    allocate,
    initial_embeddings,
    knn_adjacency,
    learned_adjacency,
    pick_seed_nodes,
    synthetic_size,
)
from talk_cli.encode.encoder import EncodeSettings, encode_texts
from talk_cli.encode.lm import LanguageModel, check_length, encode_embeddings
from talk_cli.kernel import (
    RealGraphSide,
    cross_kernel,
    krr_loss,
    krr_predict,
    normalized_adjacency_dense,
    normalized_adjacency_sparse,
    synthetic_kernel,
)

KERNEL_DTYPE = torch.float64  # the kernel and KRR are tiny next to the LM; float64 keeps the solve stable


@dataclass
class StepReport:
    step: int
    steps: int
    loss: float
    val_accuracy: float | None  # only on validation steps
    best_val_accuracy: float


@dataclass
class DistillOutcome:
    """What a run produced: the best synthetic set (by validation accuracy) and its story."""

    embeddings: torch.Tensor
    attention_mask: torch.Tensor
    adjacency: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None
    features: torch.Tensor
    seed_nodes: torch.Tensor
    best_step: int
    best_val_accuracy: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_step: int = 0


class DenseGCN(torch.nn.Module):
    """The inner loop's classifier: two PyG dense GCN layers on the synthetic graph."""

    def __init__(self, in_dim: int, hidden: int, classes: int):
        super().__init__()
        self.first = DenseGCNConv(in_dim, hidden)
        self.second = DenseGCNConv(hidden, classes)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.second(F.relu(self.first(x, adjacency)), adjacency).squeeze(0)


class TalkDistiller:
    """Holds the synthetic set, the real graph's kernel side and the optimiser state."""

    def __init__(self, tag: TAG, lm: LanguageModel, real_features: torch.Tensor, settings: DistillSettings, device: torch.device):
        self.tag, self.lm, self.settings, self.device = tag, lm, settings, device
        self.spec = settings.kernel_spec()
        check_length(lm, settings.seq_len, "--seq-len")
        torch.manual_seed(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        lm.model.to(device=device, dtype=torch.float32).eval()
        lm.model.requires_grad_(False)  # the outer loop learns E, not the LM

        self.train_nodes = torch.nonzero(tag.train_mask).flatten()
        self.val_nodes = torch.nonzero(tag.val_mask).flatten()
        self.real_labels = tag.labels.to(device)
        self.real_adjacency = normalized_adjacency_sparse(tag.edge_index, tag.num_nodes, KERNEL_DTYPE).to(device)
        self.set_real_features(real_features)

        train_counts = tag.class_counts(tag.train_mask)
        n_syn = synthetic_size(len(self.train_nodes), sum(c > 0 for c in train_counts), settings.ratio, settings.size)
        self.counts = allocate(train_counts, n_syn)
        self.seed_nodes = pick_seed_nodes(tag, real_features, self.counts, settings.seed)
        embeddings, mask = initial_embeddings([tag.texts[i] for i in self.seed_nodes], lm, settings.seq_len)
        self.embeddings = torch.nn.Parameter(embeddings.to(device))
        self.mask = mask.to(device)
        self.labels = tag.labels[self.seed_nodes].to(device)
        one_hot = F.one_hot(self.labels, tag.num_classes).to(torch.float32)
        self.targets = torch.nn.Parameter(one_hot) if settings.soft_labels else one_hot
        self.adjacency_logits = None
        groups = [{"params": [self.embeddings], "lr": settings.lr}]
        if settings.structure == "learned":
            with torch.no_grad():
                start = knn_adjacency(self.features().double(), settings.knn)
            self.adjacency_logits = torch.nn.Parameter((4 * start - 2).float())  # kNN edges start at sigmoid(2)
            groups.append({"params": [self.adjacency_logits], "lr": settings.lr_adjacency})
        if settings.soft_labels:
            groups.append({"params": [self.targets], "lr": settings.lr_labels})
        self.optimizer = torch.optim.Adam(groups)
        self.gcn = DenseGCN(lm.identity.hidden_size, 64, tag.num_classes).to(device) if settings.inner_every else None
        self.pretrained_lm = copy.deepcopy(lm.model.state_dict()) if settings.inner_every else None
        self.pretrained_features = real_features

        self.step = 0
        self.best: dict[str, Any] = {"step": 0, "val": -1.0, "state": self.state()}
        self.history: list[dict[str, Any]] = []

    # --- the pieces of one step -------------------------------------------------------------

    def set_real_features(self, features: torch.Tensor) -> None:
        self.real = RealGraphSide(self.real_adjacency, features.to(self.device, KERNEL_DTYPE), self.spec)

    def features(self) -> torch.Tensor:
        """pool(LM(E)) of every synthetic node, chunk by chunk, without autograd."""
        with torch.no_grad():
            return torch.cat(
                [
                    encode_embeddings(self.lm, self.embeddings[part], self.mask[part])
                    for part in self.chunks()
                ]
            )

    def chunks(self) -> list[slice]:
        n, size = self.embeddings.shape[0], self.settings.lm_chunk
        return [slice(start, start + size) for start in range(0, n, size)]

    def adjacency(self, features: torch.Tensor) -> torch.Tensor:
        """The synthetic graph A_s (zero diagonal) for the current features."""
        if self.settings.structure == "learned":
            return learned_adjacency(self.adjacency_logits.to(KERNEL_DTYPE))
        if self.settings.structure == "knn":
            return knn_adjacency(features.detach(), self.settings.knn)
        return torch.zeros(features.shape[0], features.shape[0], dtype=features.dtype, device=features.device)

    def predict(self, features: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """KRR scores of real nodes `rows` from the synthetic set with these features."""
        a_hat = normalized_adjacency_dense(self.adjacency(features))
        k_ss, state = synthetic_kernel(a_hat, features, self.spec)
        k_bs = cross_kernel(self.real, a_hat, features, state, rows=rows.to(self.device))
        return krr_predict(k_bs, k_ss, self.targets.to(KERNEL_DTYPE), self.settings.ridge)

    def kernel_loss(self, features: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return krr_loss(self.predict(features, rows), self.real_labels[rows.to(self.device)], self.tag.num_classes, self.settings.loss)

    def inject(self, grad: torch.Tensor) -> None:
        """Back-propagate ∂loss/∂X_s into E one chunk at a time."""
        for part in self.chunks():
            out = encode_embeddings(self.lm, self.embeddings[part], self.mask[part])
            out.backward(grad[part].to(out.dtype))

    def sample_batch(self) -> torch.Tensor:
        size = self.settings.krr_batch
        if size == 0 or size >= len(self.train_nodes):
            return self.train_nodes
        return self.train_nodes[torch.randperm(len(self.train_nodes), generator=self.generator)[:size]]

    def validation_accuracy(self, features: torch.Tensor) -> float:
        with torch.no_grad():
            scores = self.predict(features, self.val_nodes)
        return float((scores.argmax(dim=1).cpu() == self.tag.labels[self.val_nodes]).float().mean())

    def outer_step(self) -> StepReport:
        features = self.features().to(KERNEL_DTYPE)
        val = None
        if self.step % self.settings.eval_every == 0:
            val = self.remember_if_best(features)
        leaf = features.detach().requires_grad_()
        self.optimizer.zero_grad()
        loss = self.kernel_loss(leaf, self.sample_batch())
        loss.backward()
        self.inject(leaf.grad)
        self.optimizer.step()
        self.step += 1
        if self.settings.inner_every and self.step % self.settings.inner_every == 0:
            self.inner_round()
        loss_value = loss.item()
        self.history.append({"step": self.step, "loss": loss_value, "val_accuracy": val})
        return StepReport(self.step, self.settings.steps, loss_value, val, self.best["val"])

    def remember_if_best(self, features: torch.Tensor) -> float:
        """Validation accuracy of the current synthetic set; keep a copy when it is the best so far."""
        val = self.validation_accuracy(features)
        if val > self.best["val"]:
            self.best = {"step": self.step, "val": val, "state": self.state()}
        return val

    def inner_round(self) -> None:
        """Train LM + GCN on the synthetic set for a few steps, then re-encode the real graph
        with the updated LM so the kernel sees the LM state that training will produce."""
        self.lm.model.requires_grad_(True)
        optimizer = torch.optim.Adam(
            [{"params": self.lm.model.parameters(), "lr": self.settings.inner_lr}, {"params": self.gcn.parameters(), "lr": 0.01}]
        )
        adjacency = self.adjacency(self.features()).float().detach()
        for _ in range(self.settings.inner_steps):
            x = encode_embeddings(self.lm, self.embeddings.detach(), self.mask)
            logits = self.gcn(x, adjacency)
            targets = self.targets.detach()
            loss = F.cross_entropy(logits, targets.softmax(dim=1) if self.settings.soft_labels else self.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.lm.model.requires_grad_(False)
        self.inner_refresh_real_features()

    def inner_refresh_real_features(self) -> None:
        """Re-encode every real text with the current (inner-loop-trained) LM."""
        encoded, _ = encode_texts(self.tag.texts, self.lm, EncodeSettings(max_length=self.settings.max_length), self.device)
        self.set_real_features(encoded)

    # --- state, for the best copy and for checkpoints ------------------------------------------

    def state(self) -> dict[str, torch.Tensor]:
        state = {"embeddings": self.embeddings.detach().clone(), "targets": self.targets.detach().clone()}
        if self.adjacency_logits is not None:
            state["adjacency_logits"] = self.adjacency_logits.detach().clone()
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.embeddings.copy_(state["embeddings"])
            self.targets.copy_(state["targets"])
            if self.adjacency_logits is not None:
                self.adjacency_logits.copy_(state["adjacency_logits"])

    def finish(self) -> DistillOutcome:
        """Validate the final state, restore the best one and compute what the bundle stores."""
        self.remember_if_best(self.features().to(KERNEL_DTYPE))
        self.load_state(self.best["state"])
        if self.pretrained_lm is not None:
            # Bundles are consumed with the pretrained LM; the inner loop's LM was transient.
            self.lm.model.load_state_dict(self.pretrained_lm)
            self.set_real_features(self.pretrained_features)
        features = self.features()
        adjacency = self.adjacency(features.to(KERNEL_DTYPE)).float().detach()
        return DistillOutcome(
            embeddings=self.embeddings.detach().float().cpu(),
            attention_mask=self.mask.cpu(),
            adjacency=adjacency.cpu(),
            labels=self.labels.cpu(),
            soft_labels=self.targets.detach().float().cpu() if self.settings.soft_labels else None,
            features=features.float().cpu(),
            seed_nodes=self.seed_nodes,
            best_step=self.best["step"],
            best_val_accuracy=self.best["val"],
            history=self.history,
        )


def distill_talk(
    distiller: TalkDistiller,
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[TalkDistiller], None] | None = None,
) -> DistillOutcome:
    """Run the outer loop to `settings.steps`, from wherever `distiller` stands (resume)."""
    started = time.perf_counter()
    resumed_from = distiller.step
    while distiller.step < distiller.settings.steps:
        report = distiller.outer_step()
        if on_step:
            on_step(report)
        if on_checkpoint and distiller.step % distiller.settings.checkpoint_every == 0 and distiller.step < distiller.settings.steps:
            on_checkpoint(distiller)
    outcome = distiller.finish()
    outcome.seconds = time.perf_counter() - started
    outcome.resumed_from_step = resumed_from
    return outcome


class KernelFeaturesDistiller(TalkDistiller):
    """The structure-based-NTK condensation that TaLK extends: the same KRR outer loop, but the
    synthetic *feature vectors* are learned directly, with no LM in the loop. They start from the
    seed nodes' real features; the bundle's token embeddings keep the seed texts they came from."""

    def __init__(self, tag: TAG, lm: LanguageModel, real_features: torch.Tensor, settings: DistillSettings, device: torch.device):
        super().__init__(tag, lm, real_features, settings, device)
        self.learned_features = torch.nn.Parameter(real_features[self.seed_nodes].clone().to(device))
        self.optimizer.param_groups[0]["params"] = [self.learned_features]
        self.best = {"step": 0, "val": -1.0, "state": self.state()}

    def features(self) -> torch.Tensor:
        return self.learned_features.detach()

    def inject(self, grad: torch.Tensor) -> None:
        self.learned_features.grad = grad.to(self.learned_features.dtype)

    def state(self) -> dict[str, torch.Tensor]:
        state = super().state()
        if hasattr(self, "learned_features"):
            state["learned_features"] = self.learned_features.detach().clone()
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state(state)
        with torch.no_grad():
            self.learned_features.copy_(state["learned_features"])
