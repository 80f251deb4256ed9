"""The real graph as the outer loop sees it, and how a synthetic set is scored on it: the KRR
prediction of real nodes (the loss and `select: krr`) and a GCN trained on the set (`select: gcn`).

Under torchrun the kernel's side holds this rank's contiguous share of the rows; `held` says
which of a set of nodes are in it, and each rank scores the nodes it holds (docs/scale.md)."""

from __future__ import annotations

import torch

from talk_cli import distributed
from talk_cli.data.tag import TAG
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import SyntheticGraph
from talk_cli.gnn.settings import EvalSettings
from talk_cli.gnn.train import RealNodes, synthetic_training, training_targets, validation_run
from talk_cli.graph import normalized_adjacency_dense, normalized_adjacency_sparse
from talk_cli.kernel import KERNEL_DTYPE, RealGraphSide, RowShard, cross_kernel, krr_weights, synthetic_kernel

VALIDATION_BLOCK = 8192  # validation nodes scored at a time
# `select: gcn`: one seeded GCN run of the gnn protocol's model per validation, checked on the
# real validation nodes every 10 of its epochs.
GCN_SELECTION = EvalSettings(runs=1, eval_every=10)


class RealSide:
    """The kernel's side of the real graph, and the nodes that drive the loss (training) and the
    selection (validation).

    With `select: gcn`, rank 0 also holds where the judging GCN predicts (`gcn_graph`: the
    validation nodes, or a sample of `select_nodes` of them, with the features the bundle will be
    evaluated with). It keeps those features when the inner loop refreshes the kernel's, because
    `talk evaluate` reads bundles with the pretrained LM."""

    def __init__(self, tag: TAG, features: torch.Tensor, settings: DistillSettings, device: torch.device):
        self.device, self.spec = device, settings.kernel_spec()
        self.shard = RowShard(*distributed.row_range(tag.num_nodes), gather=distributed.gather_rows)
        self.train_nodes = torch.nonzero(tag.train_mask).flatten()
        self.val_nodes = torch.nonzero(tag.val_mask).flatten()
        self.labels = tag.labels.to(device)
        self.adjacency = normalized_adjacency_sparse(tag.edge_index, tag.num_nodes, KERNEL_DTYPE).to(device)
        judged = settings.select == "gcn" and distributed.rank() == 0
        self.gcn_graph = RealNodes.validation_sample(tag, features, device, settings.select_nodes, settings.seed) if judged else None
        self.set_features(features)

    def set_features(self, features: torch.Tensor) -> None:
        self.kernel_side = RealGraphSide(self.adjacency, features.to(self.device), self.spec, self.shard)

    def held(self, nodes: torch.Tensor) -> torch.Tensor:
        return nodes[(nodes >= self.shard.start) & (nodes < self.shard.stop)]


class KRRFit:
    """One synthetic state's side of KRR, computed once: its kernel side and the weights
    (K_SS + λ·tr(K_SS)/n·I)⁻¹ Y_S, which any real rows' cross kernel multiplies; validation
    scores every block of rows with one fit. Differentiable in `features` (the loss)."""

    def __init__(self, real: RealSide, synthetic: SyntheticGraph, features: torch.Tensor, ridge: float):
        self.real = real
        self.adjacency = normalized_adjacency_dense(synthetic.adjacency(features))
        k_ss, self.side = synthetic_kernel(self.adjacency, features, real.spec)
        self.weights = krr_weights(k_ss, synthetic.targets.to(KERNEL_DTYPE), ridge)

    def scores(self, nodes: torch.Tensor) -> torch.Tensor:
        """KRR scores of real nodes `nodes`, which this rank must hold."""
        rows = (nodes - self.real.shard.start).to(self.real.device)
        return cross_kernel(self.real.kernel_side, self.adjacency, self.side, rows=rows) @ self.weights


def krr_accuracy(real: RealSide, synthetic: SyntheticGraph, features: torch.Tensor, ridge: float) -> float:
    """KRR accuracy on the real validation nodes, in blocks of rows: the cross kernel's
    intermediates on every validation node at once would cost gigabytes on a large graph. The
    interleaved kernel computes every row whichever are asked, so it takes them in one block."""
    held = real.held(real.val_nodes)
    block_size = VALIDATION_BLOCK if real.kernel_side.rowwise else max(len(held), 1)
    correct = torch.zeros(1, dtype=torch.float64, device=real.device)
    with torch.no_grad():
        fit = KRRFit(real, synthetic, features, ridge)
        for block in held.split(block_size):
            correct += (fit.scores(block).argmax(dim=1) == real.labels[block.to(real.device)]).sum()
    return float(distributed.sum_over_ranks(correct)) / len(real.val_nodes)


def gcn_accuracy(real: RealSide, synthetic: SyntheticGraph, features: torch.Tensor, seed: int) -> float:
    """Validation accuracy of a GCN trained on the synthetic set as `talk evaluate` will train it.
    Rank 0 trains it and sends the score to the other ranks, which wait."""
    score = torch.zeros(1, dtype=torch.float64, device=real.device)
    if real.gcn_graph is not None:
        soft = synthetic.targets.detach() if synthetic.soft_labels else None
        training = synthetic_training(features.float(), synthetic.adjacency(features).float().detach(), training_targets(synthetic.labels, soft))
        score[0] = validation_run(training, real.gcn_graph, GCN_SELECTION, seed=seed)
    return float(distributed.from_rank_0(score))
