"""Downstream node classifiers from PyG, all called as model(graph) on a prepared `Graph`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.nn import APPNP, MLP, GCNConv, SAGEConv, SimpleConv

from talk_cli.errors import SettingsError
from talk_cli.gnn.settings import ARCHITECTURES
from talk_cli.graph import Graph

# Propagation steps of each model: how far a node's output reaches (its K-hop neighbourhood).
RECEPTIVE_HOPS = {"gcn": 2, "sgc": 2, "appnp": 10, "sage": 2, "mlp": 0}


class GCN(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.first = GCNConv(in_dim, hidden, normalize=False)
        self.second = GCNConv(hidden, classes, normalize=False)
        self.dropout = dropout

    def forward(self, graph: Graph) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            x = F.relu(self.first(F.dropout(graph.x, self.dropout, self.training), graph.normalized))
        else:
            # Predicting: the first layer Â(XW) + b equals (ÂX)W + b, and ÂX is kept with the graph,
            # so the widest sparse product is done once per graph, not once per prediction
            # (validation every epoch, GCN selection's checks; docs/performance.md).
            x = F.relu(self.first.lin(graph.propagated) + self.first.bias)
        return self.second(F.dropout(x, self.dropout, self.training), graph.normalized)


class SAGE(torch.nn.Module):
    """GraphSAGE (mean aggregation over the edge pattern; edge weights are ignored, as SAGEConv does)."""

    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.first, self.second, self.dropout = SAGEConv(in_dim, hidden), SAGEConv(hidden, classes), dropout

    def forward(self, graph: Graph) -> torch.Tensor:
        x = F.dropout(graph.x, self.dropout, self.training)
        x = F.relu(self.first(x, graph.pattern))
        return self.second(F.dropout(x, self.dropout, self.training), graph.pattern)


class SGC(torch.nn.Module):
    """SGC with K = 2: a linear classifier on Â²X. (SGConv itself cannot take an adjacency that
    is already normalised, so the two hops are PyG's parameter-free SimpleConv on Â.)"""

    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.hop, self.linear = SimpleConv(aggr="sum"), torch.nn.Linear(in_dim, classes)

    def forward(self, graph: Graph) -> torch.Tensor:
        if graph.x.requires_grad:  # the features are being learnt: the gradient must reach them
            return self.linear(self.hop(self.hop(graph.x, graph.normalized), graph.normalized))
        # Otherwise Â²X is a constant of the graph, kept with it: training on fixed features
        # (every epoch) and predicting start from it rather than redoing both sparse products.
        return self.linear(graph.propagated_twice)


class APPNPNet(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.mlp = MLP([in_dim, hidden, classes], dropout=dropout, norm=None)
        self.propagate = APPNP(K=10, alpha=0.1, normalize=False)

    def forward(self, graph: Graph) -> torch.Tensor:
        return self.propagate(self.mlp(graph.x), graph.normalized)


class MLPNet(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.mlp = MLP([in_dim, hidden, classes], dropout=dropout, norm=None)

    def forward(self, graph: Graph) -> torch.Tensor:
        return self.mlp(graph.x)


MODELS = {"gcn": GCN, "sgc": SGC, "appnp": APPNPNet, "sage": SAGE, "mlp": MLPNet}


def build_model(architecture: str, in_dim: int, classes: int, hidden: int = 256, dropout: float = 0.5) -> torch.nn.Module:
    if architecture not in MODELS:
        raise SettingsError(f"--model-type must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    return MODELS[architecture](in_dim, hidden, classes, dropout)
