"""Benchmark the full-graph step of `talk evaluate`: one training epoch (forward, backward, Adam)
and one evaluation forward of each downstream model on a dataset's real graph, with the graph
handed to PyG as an edge list (what the layers do by default) and as the prepared sparse CSR
matrices of `talk_cli.graph.Graph` (what talk evaluate uses).

    python -m benchmarks.evaluate [--dataset arxiv_2023] [--write docs/performance.md]

Needs the dataset's features in the encode cache (`talk encode --dataset arxiv_2023 --max-length 64`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from benchmarks.common import median_seconds, prepared_dataset, run_header, write_section


class EdgeListGCN(torch.nn.Module):
    """The same 2-layer GCN as talk_cli's, fed an edge list: GCNConv normalises it on every call."""

    def __init__(self, in_dim: int, hidden: int, classes: int):
        super().__init__()
        self.first, self.second = GCNConv(in_dim, hidden), GCNConv(hidden, classes)

    def forward(self, graph) -> torch.Tensor:
        x = F.relu(self.first(F.dropout(graph.x, 0.5, self.training), graph.edge_index))
        return self.second(F.dropout(x, 0.5, self.training), graph.edge_index)


def time_model(model: torch.nn.Module, graph, train_rows: torch.Tensor, labels: torch.Tensor, repeats: int, new_features: bool = False) -> tuple[float, float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def train_epoch() -> None:
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(graph)[train_rows], labels[train_rows]).backward()
        optimizer.step()

    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            model(graph.with_features(graph.x) if new_features else graph)

    train_epoch(), evaluate()  # warm-up
    return median_seconds(train_epoch, repeats), median_seconds(evaluate, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--dataset", default="arxiv_2023")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from types import SimpleNamespace

    from talk_cli import pipeline
    from talk_cli.evaluate import ARCHITECTURES, build_model
    from talk_cli.graph import Graph

    max_length = pipeline.distill_settings(args.dataset)[0].max_length
    data = prepared_dataset(args.dataset, args.data_root, max_length)
    tag, features = data.tag, data.features
    train_rows = torch.nonzero(tag.train_mask).flatten()
    started = time.perf_counter()
    prepared = Graph.from_edges(features, tag.edge_index)
    prepare_seconds = time.perf_counter() - started

    torch.manual_seed(0)
    rows = []
    edge_list = SimpleNamespace(x=features, edge_index=tag.edge_index)
    train, evaluate = time_model(EdgeListGCN(features.shape[1], 256, tag.num_classes), edge_list, train_rows, tag.labels, args.repeats)
    rows.append(f"| gcn | edge list (GCNConv default) | {train:.3f} | {evaluate:.3f} |")
    for architecture in ARCHITECTURES:
        model = build_model(architecture, features.shape[1], tag.num_classes)
        train, evaluate = time_model(model, prepared, train_rows, tag.labels, args.repeats)
        rows.append(f"| {architecture} | prepared CSR (talk evaluate) | {train:.3f} | {evaluate:.3f} |")
    # The GCN predicts from ÂX kept with the graph; a graph with new features (a joint check) computes it first.
    train, evaluate = time_model(build_model("gcn", features.shape[1], tag.num_classes), prepared, train_rows, tag.labels, args.repeats, True)
    rows.append(f"| gcn | prepared CSR, new features at each forward | {train:.3f} | {evaluate:.3f} |")

    lines = [
        f"### Full-graph evaluation step ({args.dataset}: {tag.num_nodes:,} nodes, {tag.edge_index.shape[1]:,} directed edges)",
        "",
        *run_header(f"python -m benchmarks.evaluate --dataset {args.dataset} --write docs/performance.md"),
        "",
        f"Median seconds over {args.repeats} repeats. Preparing the graph (normalised adjacency and edge pattern "
        f"as CSR) took {prepare_seconds:.2f} s once. Evaluating a bundle costs one evaluation forward on the real "
        "graph per epoch; the full-data reference costs a training epoch and an evaluation forward per epoch. "
        "The GCN's evaluation forward starts from ÂX, computed once per graph (on the warm-up forward here); the last row "
        "gives it new features every time, as the joint protocol's checks do, so each forward computes ÂX first.",
        "",
        "| model | graph given as | train epoch s | eval forward s |",
        "|---|---|---:|---:|",
        *rows,
    ]
    print("\n".join(lines))
    if args.write:
        write_section(args.write, f"evaluate-{args.dataset}", "\n".join(lines))


if __name__ == "__main__":
    main()
