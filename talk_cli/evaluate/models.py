"""Downstream node classifiers from PyG, all called as model(x, edge_index, edge_weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.nn import APPNP, MLP, GCNConv, SAGEConv, SGConv

from talk_cli.errors import SettingsError

ARCHITECTURES = ("gcn", "sgc", "appnp", "sage", "mlp")


class GCN(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.first, self.second, self.dropout = GCNConv(in_dim, hidden), GCNConv(hidden, classes), dropout

    def forward(self, x, edge_index, edge_weight):
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.first(x, edge_index, edge_weight))
        return self.second(F.dropout(x, self.dropout, self.training), edge_index, edge_weight)


class SAGE(torch.nn.Module):
    """GraphSAGE (mean aggregation); it ignores edge weights, as SAGEConv does."""

    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.first, self.second, self.dropout = SAGEConv(in_dim, hidden), SAGEConv(hidden, classes), dropout

    def forward(self, x, edge_index, edge_weight):
        x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.first(x, edge_index))
        return self.second(F.dropout(x, self.dropout, self.training), edge_index)


class SGC(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.conv = SGConv(in_dim, classes, K=2)

    def forward(self, x, edge_index, edge_weight):
        return self.conv(x, edge_index, edge_weight)


class APPNPNet(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.mlp = MLP([in_dim, hidden, classes], dropout=dropout, norm=None)
        self.propagate = APPNP(K=10, alpha=0.1)

    def forward(self, x, edge_index, edge_weight):
        return self.propagate(self.mlp(x), edge_index, edge_weight)


class MLPNet(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float):
        super().__init__()
        self.mlp = MLP([in_dim, hidden, classes], dropout=dropout, norm=None)

    def forward(self, x, edge_index, edge_weight):
        return self.mlp(x)


MODELS = {"gcn": GCN, "sgc": SGC, "appnp": APPNPNet, "sage": SAGE, "mlp": MLPNet}


def build_model(architecture: str, in_dim: int, classes: int, hidden: int = 256, dropout: float = 0.5) -> torch.nn.Module:
    if architecture not in MODELS:
        raise SettingsError(f"--model-type must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    return MODELS[architecture](in_dim, hidden, classes, dropout)
