"""How many real texts a validation check of the joint protocol needs re-encoded: the nodes within
the model's propagation steps of a validation or test node (the only rows a check reads). Where
that is nearly every node, re-encoding every text costs no more than re-encoding the subset.

    python -m benchmarks.receptive_field [--datasets cora arxiv_2023] [--write docs/evaluate.md]

Reads only the graphs (no LM, no features).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch_geometric.utils import k_hop_subgraph

from benchmarks.common import run_header, write_section


def main() -> None:
    from talk_cli import pipeline
    from talk_cli.gnn import RECEPTIVE_HOPS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--datasets", nargs="+", default=["cora", "arxiv_2023"])
    parser.add_argument("--write", type=Path, help="update the receptive-field section of this document")
    args = parser.parse_args()
    lines = [*run_header("python -m benchmarks.receptive_field " + " ".join(sys.argv[1:])), ""]
    lines += ["| dataset | nodes | val + test nodes | model (hops) | nodes a check reads | share |", "|---|---:|---:|---|---:|---:|"]
    for dataset in args.datasets:
        tag = pipeline.load_dataset(dataset, args.data_root)
        nodes = tag.labels.shape[0]
        judged = torch.nonzero(tag.val_mask | tag.test_mask).flatten()
        for hops in sorted(set(RECEPTIVE_HOPS.values())):
            models = ", ".join(name for name, h in RECEPTIVE_HOPS.items() if h == hops)
            reached = len(k_hop_subgraph(judged, hops, tag.edge_index, num_nodes=nodes)[0]) if hops else len(judged)
            lines.append(f"| {dataset} | {nodes} | {len(judged)} | {models} ({hops}) | {reached} | {100 * reached / nodes:.0f}% |")
            print(lines[-1], flush=True)
    if args.write:
        write_section(args.write, "receptive-field", "\n".join(lines))


if __name__ == "__main__":
    main()
