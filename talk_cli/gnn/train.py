"""Train a node classifier on one graph and test it on the real graph, selecting the epoch
by accuracy on the real validation nodes (never the test nodes)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from talk_cli import threads
from talk_cli.data.tag import TAG
from talk_cli.encode.lm import LanguageModel, encode_embeddings
from talk_cli.gnn.models import build_model
from talk_cli.gnn.settings import EvalSettings
from talk_cli.graph import Graph


@dataclass(frozen=True)
class Training:
    """What a model learns from: a graph, the rows it is trained on and their targets
    (int64 class ids, or float [rows, C] distributions for soft labels)."""

    graph: Graph
    rows: torch.Tensor
    targets: torch.Tensor


@dataclass(frozen=True)
class RealNodes:
    """Where a model is judged: the real graph, its labels and its validation and test rows."""

    graph: Graph
    labels: torch.Tensor
    val_rows: torch.Tensor
    test_rows: torch.Tensor

    @classmethod
    def of(cls, tag: TAG, features: torch.Tensor, device: torch.device) -> RealNodes:
        return cls(
            Graph.from_edges(features.to(device), tag.edge_index.to(device)),
            tag.labels.to(device),
            torch.nonzero(tag.val_mask).flatten().to(device),
            torch.nonzero(tag.test_mask).flatten().to(device),
        )

    @classmethod
    def validation_sample(cls, tag: TAG, features: torch.Tensor, device: torch.device, size: int, seed: int) -> RealNodes:
        """Validation only, for a GCN that predicts from the kept ÂX: every validation node, or where
        there are more than `size` (> 0), a seeded sample of `size` of them on the part of the graph
        their predictions read (`Graph.predicting`), with exactly their whole-graph outputs. No
        test node is kept."""
        val = torch.nonzero(tag.val_mask).flatten()
        if size == 0 or len(val) <= size:
            return cls.of(tag, features, device)
        sample = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))[:size]].sort().values.to(device)
        subset, graph = Graph.from_edges(features.to(device), tag.edge_index.to(device)).predicting(sample)
        return cls(graph, tag.labels.to(device)[subset], torch.arange(size, device=device), torch.empty(0, dtype=torch.long, device=device))


@dataclass(frozen=True)
class RunResult:
    test_accuracy: float
    test_macro_f1: float
    val_accuracy: float
    best_epoch: int
    seconds: float
    # Joint runs: the probed GNN's validation (epoch 0) and the best validation any trained epoch
    # reached, so a run that kept the probe says how far fine-tuning fell short of it.
    start_val: float | None = None
    trained_val: float | None = None


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
            "best_epochs": [r.best_epoch for r in self.runs],  # joint: 0 is the probed GNN on the pretrained LM
            **self.start_and_trained(),
        }

    def start_and_trained(self) -> dict[str, float]:
        """Joint runs that began from a probe: the probe's mean validation and that of the best
        trained epoch (fine-tuned LM + GNN) of each run."""
        if any(r.start_val is None for r in self.runs):
            return {}
        return {
            "probe_val_mean": statistics.fmean(r.start_val for r in self.runs),
            "fine_tuned_val_mean": statistics.fmean(r.trained_val for r in self.runs),
        }


def training_targets(labels: torch.Tensor, soft_labels: torch.Tensor | None) -> torch.Tensor:
    """What a classifier trains on: class ids, or for soft labels (the learned KRR regression
    targets) a class distribution, the targets clamped at 0 and normalised per row (one-hot where a
    row has no positive mass). Evaluation, GCN selection and the inner loop all read them so."""
    if soft_labels is None:
        return labels
    positive = soft_labels.clamp(min=0)
    one_hot = torch.nn.functional.one_hot(labels, positive.shape[1]).to(positive.dtype)
    mass = positive.sum(dim=1, keepdim=True)
    return torch.where(mass > 0, positive / mass.clamp(min=1e-12), one_hot)


def synthetic_training(features: torch.Tensor, adjacency: torch.Tensor, targets: torch.Tensor) -> Training:
    """A synthetic graph (dense weighted adjacency) with every node a training row."""
    from torch_geometric.utils import dense_to_sparse

    edge_index, edge_weight = dense_to_sparse(adjacency)
    graph = Graph.from_edges(features, edge_index, edge_weight.to(features.dtype))
    return Training(graph, torch.arange(features.shape[0], device=features.device), targets)


def accuracy(predicted: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> float:
    return float((predicted[rows] == labels[rows]).float().mean())


def scored_run(predicted_test: torch.Tensor, real: RealNodes, val_accuracy: float, epoch: int, seconds: float, **record) -> RunResult:
    """Score the predictions for the real test rows (the one place test labels are read)."""
    truth = real.labels[real.test_rows].cpu()
    predicted_test = predicted_test.cpu()
    return RunResult(
        test_accuracy=float((predicted_test == truth).float().mean()),
        test_macro_f1=float(f1_score(truth.numpy(), predicted_test.numpy(), average="macro")),
        val_accuracy=val_accuracy,
        best_epoch=epoch,
        seconds=seconds,
        **record,
    )


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class ids, or against distributions (soft labels)."""
    if targets.is_floating_point():
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return F.cross_entropy(logits, targets)


def tokens_step(
    lm: LanguageModel, gnn: torch.nn.Module, training: Training, embeddings: torch.Tensor, mask: torch.Tensor, optimizer: torch.optim.Optimizer
) -> None:
    """One step of LM + GNN on a synthetic graph whose features are the LM's reading of token
    embeddings, pool(LM(E)): the joint protocol's epoch on a bundle, and a step of TaLK's inner
    loop. The callers set the train or eval modes."""
    logits = gnn(training.graph.with_features(encode_embeddings(lm, embeddings, mask)))
    optimizer.zero_grad()
    classification_loss(logits[training.rows], training.targets).backward()
    optimizer.step()


# What validation chose: its accuracy, its epoch and that epoch's predictions of every real node.
Choice = tuple[float, int, torch.Tensor]
NO_CHOICE: Choice = (-1.0, 0, torch.empty(0))


def validated_training(
    train_epoch: Callable[[], None],
    predict: Callable[[], torch.Tensor],
    real: RealNodes,
    settings: EvalSettings,
    on_epoch=None,
    start: Choice = NO_CHOICE,
    on_best: Callable[[], None] | None = None,
    validations: list[float] | None = None,
) -> Choice:
    """Train for `settings.epochs`, validating every `eval_every` epochs and after the last;
    `start` is a candidate validated before training (epoch 0), and `on_best` is called whenever
    an epoch beats every earlier one (to keep its weights). Each trained epoch's validation is
    appended to `validations` when given. No test label is read here."""
    best = start
    for epoch in range(1, settings.epochs + 1):
        train_epoch()
        if epoch % settings.eval_every == 0 or epoch == settings.epochs:
            predicted = predict()
            val = accuracy(predicted, real.labels, real.val_rows)
            if validations is not None:
                validations.append(val)
            if val > best[0]:
                best = (val, epoch, predicted)
                if on_best:
                    on_best()
        if on_epoch:
            on_epoch(1)
    return best


def selected_run(
    train_epoch: Callable[[], None],
    predict: Callable[[], torch.Tensor],
    real: RealNodes,
    settings: EvalSettings,
    on_epoch=None,
    start: Choice = NO_CHOICE,
) -> RunResult:
    """`validated_training`, then the test predictions of the selected epoch are scored."""
    started = time.perf_counter()
    validations: list[float] = []
    val, epoch, predicted = validated_training(train_epoch, predict, real, settings, on_epoch, start, validations=validations)
    record = {} if start is NO_CHOICE else {"start_val": start[0], "trained_val": max(validations)}
    return scored_run(predicted[real.test_rows], real, val, epoch, time.perf_counter() - started, **record)


def validation_run(training: Training, real: RealNodes, settings: EvalSettings, seed: int) -> float:
    """The best real-validation accuracy of one training run (how `talk distill --select gcn`
    judges a synthetic set); test nodes are not looked at."""
    return validated_training(*trainer(training, real, settings, seed), real, settings)[0]


def train_once(training: Training, real: RealNodes, settings: EvalSettings, seed: int, on_epoch=None) -> RunResult:
    threads.adapt()  # a run boundary: follow the machine's load
    return selected_run(*trainer(training, real, settings, seed), real, settings, on_epoch)


def trainer(training: Training, real: RealNodes, settings: EvalSettings, seed: int) -> tuple[Callable[[], None], Callable[[], torch.Tensor]]:
    """A freshly initialised model (seeded): its one-epoch training step and its prediction of
    every real node."""
    torch.manual_seed(seed)
    targets = training.targets
    # The real labels may be a sample that misses a class the training set has.
    num_classes = max(int(real.labels.max()) + 1, targets.shape[1] if targets.is_floating_point() else int(targets.max()) + 1)
    model = build_model(settings.architecture, training.graph.x.shape[1], num_classes, settings.hidden, settings.dropout)
    return model_steps(model.to(training.graph.x.device), training, real, settings)


def model_steps(model: torch.nn.Module, training: Training, real: RealNodes, settings: EvalSettings) -> tuple[Callable[[], None], Callable[[], torch.Tensor]]:
    """`model`'s one-epoch training step (a fresh Adam) and its prediction of every real node."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def train_epoch() -> None:
        model.train()
        optimizer.zero_grad()
        classification_loss(model(training.graph)[training.rows], training.targets).backward()
        optimizer.step()

    def predict() -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(real.graph).argmax(dim=1)

    return train_epoch, predict


def probe(model: torch.nn.Module, training: Training, real: RealNodes, settings: EvalSettings) -> Choice:
    """The first stage of a joint training: `model` alone for `settings.probe_epochs` epochs on
    fixed features, validated every epoch and left at its best state. That state is returned as
    epoch 0's candidate; with no probe epochs, nothing is trained and there is no candidate."""
    if settings.probe_epochs == 0:
        return NO_CHOICE
    kept: dict[str, torch.Tensor] = {}

    def keep() -> None:
        kept.update({name: value.detach().clone() for name, value in model.state_dict().items()})

    stage = replace(settings, epochs=settings.probe_epochs, eval_every=1)
    val, _, predicted = validated_training(*model_steps(model, training, real, settings), real, stage, on_best=keep)
    model.load_state_dict(kept)
    return val, 0, predicted


def train_runs(training: Training, real: RealNodes, settings: EvalSettings, on_epoch=None) -> Summary:
    """`settings.runs` independent runs with seeds seed, seed+1, ..."""
    return Summary([train_once(training, real, settings, settings.seed + run, on_epoch) for run in range(settings.runs)])
