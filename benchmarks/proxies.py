"""Build proxies of graphs nobody tuned for from the shared datasets, to choose defaults on:

    python -m benchmarks.proxies --out /tmp/proxies     # writes /tmp/proxies/<name>/ in the folder format

- `arxiv-sparse`: arxiv_2023's titles, 10 classes made imbalanced (the largest class keeps up
  to 3,000 nodes, each next one 0.6 times the one before), edges dropped at random until about
  half the nodes are isolated; a random 60/20/20 split (no split.json).
- `cora-half`: half of Cora's nodes, drawn at random, with the edges among them.
- `cora-hetero`: Cora (long texts: title and abstract) with about half of its edges rewired, each
  to a random node of another class, until the edge homophily falls from 0.81 to about 0.4.

They are written outside the repository (the shared datasets are never copied into it).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from talk_cli.data import load_tag


def write_folder(out: Path, texts: list[str], labels: list[int], names: list[str], edges: list[tuple[int, int]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "nodes.jsonl", "w", encoding="utf-8") as handle:
        for i, (text, label) in enumerate(zip(texts, labels)):
            handle.write(json.dumps({"id": i, "label": label, "text": text}) + "\n")
    (out / "labels.txt").write_text("".join(f"{name}\n" for name in names))
    (out / "edges.csv").write_text("src,dst\n" + "".join(f"{u},{v}\n" for u, v in edges))


def subgraph(tag, keep: list[int]) -> tuple[list[str], list[int], list[tuple[int, int]]]:
    index = {node: i for i, node in enumerate(keep)}
    src, dst = tag.edge_index.tolist()
    edges = sorted({(index[u], index[v]) for u, v in zip(src, dst) if u < v and u in index and v in index})
    return [tag.texts[n] for n in keep], [int(tag.labels[n]) for n in keep], edges


def arxiv_sparse(data_root: Path, rng: random.Random) -> tuple[list[str], list[int], list[str], list[tuple[int, int]]]:
    tag = load_tag("arxiv_2023", data_root)
    by_class: dict[int, list[int]] = {}
    for node, label in enumerate(tag.labels.tolist()):
        by_class.setdefault(label, []).append(node)
    largest = sorted(by_class, key=lambda c: -len(by_class[c]))[:10]
    keep, size = [], 3000.0
    for c in largest:
        members = by_class[c][:]
        rng.shuffle(members)
        keep += members[: max(20, int(size))]
        size *= 0.6
    keep.sort()
    texts, labels, edges = subgraph(tag, keep)
    relabel = {old: new for new, old in enumerate(largest)}
    rng.shuffle(edges)
    degree = torch.zeros(len(keep), dtype=torch.long)
    kept = []
    for u, v in edges:  # keep an edge only while both ends are still among the first half of nodes to connect
        if len(kept) and int((degree > 0).sum()) >= len(keep) // 2 and (degree[u] == 0 or degree[v] == 0):
            continue
        kept.append((u, v))
        degree[u] += 1
        degree[v] += 1
    return texts, [relabel[label] for label in labels], [tag.label_names[c] for c in largest], kept


def cora_half(data_root: Path, rng: random.Random) -> tuple[list[str], list[int], list[str], list[tuple[int, int]]]:
    tag = load_tag("cora", data_root)
    keep = sorted(rng.sample(range(tag.num_nodes), tag.num_nodes // 2))
    texts, labels, edges = subgraph(tag, keep)
    return texts, labels, list(tag.label_names), edges


def cora_hetero(data_root: Path, rng: random.Random) -> tuple[list[str], list[int], list[str], list[tuple[int, int]]]:
    tag = load_tag("cora", data_root)
    labels = tag.labels.tolist()
    texts, _, edges = subgraph(tag, list(range(tag.num_nodes)))
    homophily = sum(labels[u] == labels[v] for u, v in edges) / len(edges)
    rewire = 1 - 0.4 / homophily  # the share of edges moved: same-class edges shrink by it on average
    others = [[n for n in range(tag.num_nodes) if labels[n] != c] for c in range(tag.num_classes)]
    moved = sorted({(min(u, w), max(u, w)) for u, v in edges for w in [rng.choice(others[labels[u]]) if rng.random() < rewire else v]})
    return texts, labels, list(tag.label_names), moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", help="build these proxies only")
    args = parser.parse_args()
    for name, build in (("arxiv-sparse", arxiv_sparse), ("cora-half", cora_half), ("cora-hetero", cora_hetero)):
        if args.only and name not in args.only:
            continue
        texts, labels, names, edges = build(args.data_root, random.Random(args.seed))
        write_folder(args.out / name, texts, labels, names, edges)
        tag = load_tag(str(args.out / name))
        isolated = int((torch.bincount(tag.edge_index[0], minlength=tag.num_nodes) == 0).sum())
        counts = tag.class_counts(tag.train_mask)
        src, dst = tag.edge_index
        homophily = float((tag.labels[src] == tag.labels[dst]).float().mean())
        print(
            f"{name}: {tag.num_nodes} nodes, {tag.edge_index.shape[1] // 2} edges (edge homophily {homophily:.2f}), {isolated} isolated, "
            f"training nodes per class {counts}"
        )


if __name__ == "__main__":
    main()
