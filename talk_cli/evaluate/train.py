"""Train a node classifier on one graph and test it on the real graph, selecting the epoch
by accuracy on the real validation nodes (never the test nodes)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from talk_cli.errors import SettingsError
from talk_cli.graph import Graph
from talk_cli.evaluate.models import ARCHITECTURES, build_model


@dataclass(frozen=True)
class EvalSettings:
    architecture: str = "gcn"
    runs: int = 10
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    hidden: int = 256
    dropout: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise SettingsError(f"--model-type must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.runs < 1 or self.epochs < 1:
            raise SettingsError("--runs and --epochs must be at least 1")


@dataclass(frozen=True)
class RunResult:
    test_accuracy: float
    test_macro_f1: float
    val_accuracy: float
    best_epoch: int
    seconds: float


@dataclass(frozen=True)
class Summary:
    runs: list[RunResult]

    def as_dict(self) -> dict[str, float | int]:
        acc = [r.test_accuracy for r in self.runs]
        f1 = [r.test_macro_f1 for r in self.runs]
        return {
            "runs": len(self.runs),
            "test_accuracy_mean": statistics.fmean(acc),
            "test_accuracy_std": statistics.pstdev(acc),
            "test_macro_f1_mean": statistics.fmean(f1),
            "test_macro_f1_std": statistics.pstdev(f1),
            "val_accuracy_mean": statistics.fmean(r.val_accuracy for r in self.runs),
            "train_seconds_mean": statistics.fmean(r.seconds for r in self.runs),
        }


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def train_once(
    train_graph: Graph,
    train_rows: torch.Tensor,
    targets: torch.Tensor,
    real_graph: Graph,
    real_labels: torch.Tensor,
    val_rows: torch.Tensor,
    test_rows: torch.Tensor,
    settings: EvalSettings,
    seed: int,
    on_epoch=None,
) -> RunResult:
    """`targets`: int64 class ids, or float [rows, C] distributions (soft labels)."""
    torch.manual_seed(seed)
    num_classes = max(int(real_labels.max()) + 1, targets.shape[1] if targets.is_floating_point() else 0)
    model = build_model(settings.architecture, train_graph.x.shape[1], num_classes, settings.hidden, settings.dropout)
    model = model.to(train_graph.x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    started = time.perf_counter()
    best = (-1.0, 0, None)  # val accuracy, epoch, test predictions
    for epoch in range(1, settings.epochs + 1):
        model.train()
        optimizer.zero_grad()
        logits = model(train_graph)[train_rows]
        loss = soft_cross_entropy(logits, targets) if targets.is_floating_point() else F.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            predicted = model(real_graph).argmax(dim=1)
        val = float((predicted[val_rows] == real_labels[val_rows]).float().mean())
        if val > best[0]:
            best = (val, epoch, predicted[test_rows].cpu())
        if on_epoch:
            on_epoch(1)
    seconds = time.perf_counter() - started
    truth = real_labels[test_rows].cpu()
    return RunResult(
        test_accuracy=float((best[2] == truth).float().mean()),
        test_macro_f1=float(f1_score(truth.numpy(), best[2].numpy(), average="macro")),
        val_accuracy=best[0],
        best_epoch=best[1],
        seconds=seconds,
    )


def train_runs(*args, settings: EvalSettings, on_epoch=None) -> Summary:
    """`settings.runs` independent runs with seeds seed, seed+1, ...; args as for `train_once`."""
    results = []
    for run in range(settings.runs):
        results.append(train_once(*args, settings=settings, seed=settings.seed + run, on_epoch=on_epoch))
    return Summary(results)
