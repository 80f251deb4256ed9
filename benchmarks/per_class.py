"""Per-class accuracy of a GCN trained on a TaLK bundle against one trained on every real
training node: which classes lose most, and how many synthetic nodes each class got.

    python -m benchmarks.per_class --dataset arxiv_2023 --ratio 0.01 --runs 2 --write docs/results.md

The bundle is distilled with the dataset's recipe. Both GCNs are the gnn protocol's (`talk
evaluate`'s training, epoch chosen on the real validation nodes), `--runs` seeds each, and a
class's accuracy pools the predictions of all runs. Rows are sorted by the validation loss
against full; test columns are for information only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import add_set_option, prepared_dataset, recipe_settings, run_header, write_section
from talk_cli import pipeline
from talk_cli.evaluate import EvalSettings, RealNodes, Training, bundle_training
from talk_cli.gnn import trainer, validated_training


def predictions(training: Training, real: RealNodes, runs: int) -> list[torch.Tensor]:
    """Each run's predictions of every real node at its selected epoch."""
    settings = EvalSettings(runs=runs)
    return [validated_training(*trainer(training, real, settings, seed), real, settings)[2].cpu() for seed in range(runs)]


def per_class(predicted: list[torch.Tensor], labels: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Accuracy per class over the nodes in `mask`, pooled over runs (NaN for a class with none)."""
    correct = torch.zeros(num_classes)
    total = torch.zeros(num_classes)
    for p in predicted:
        correct += torch.bincount(labels[mask], weights=(p[mask] == labels[mask]).float(), minlength=num_classes)
        total += torch.bincount(labels[mask], minlength=num_classes).float()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="arxiv_2023")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=2)
    add_set_option(parser)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    settings = recipe_settings(parser, args.dataset, dict(args.set), ratio=args.ratio)
    prepared = prepared_dataset(args.dataset, args.data_root, settings.max_length)
    tag, device = prepared.tag, prepared.device
    with tempfile.TemporaryDirectory() as tmp:
        bundle, _ = pipeline.distill(prepared, settings, Path(tmp) / "bundle")
    real = RealNodes.of(tag, prepared.features, device)
    train = torch.nonzero(tag.train_mask).flatten().to(device)
    full = predictions(Training(real.graph, train, real.labels[train]), real, args.runs)
    talk = predictions(bundle_training(bundle, bundle.features, device), real, args.runs)

    k = tag.num_classes
    labels = tag.labels
    columns = {
        "full_val": per_class(full, labels, tag.val_mask, k),
        "talk_val": per_class(talk, labels, tag.val_mask, k),
        "full_test": per_class(full, labels, tag.test_mask, k),
        "talk_test": per_class(talk, labels, tag.test_mask, k),
    }
    train_counts = torch.bincount(labels[tag.train_mask], minlength=k)
    val_counts = torch.bincount(labels[tag.val_mask], minlength=k)
    synthetic = torch.bincount(bundle.labels, minlength=k)
    loss = columns["full_val"] - columns["talk_val"]
    order = sorted(range(k), key=lambda c: -float(torch.nan_to_num(loss[c], nan=-1.0)))

    def pct(value: torch.Tensor) -> str:
        return "-" if torch.isnan(value) else f"{100 * float(value):.1f}"

    command = "python -m benchmarks.per_class " + " ".join(sys.argv[1:])
    lines = [
        *run_header(command),
        f"{bundle.num_synthetic} synthetic nodes, {args.runs} GCN runs per side; accuracy % per class, pooled over runs.",
        "",
        "| class | train nodes | synthetic nodes | val nodes | full val | talk val | val loss | full test (info) | talk test (info) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in order:
        lines.append(
            f"| {tag.label_names[c]} | {int(train_counts[c])} | {int(synthetic[c])} | {int(val_counts[c])} | {pct(columns['full_val'][c])} "
            f"| {pct(columns['talk_val'][c])} | {pct(loss[c])} | {pct(columns['full_test'][c])} | {pct(columns['talk_test'][c])} |"
        )
    seen = ~torch.isnan(loss)
    one = seen & (synthetic == 1)
    more = seen & (synthetic > 1)
    weights = val_counts.float()

    def weighted(mask: torch.Tensor) -> str:
        return f"{100 * float((loss[mask] * weights[mask]).sum() / weights[mask].sum()):.1f}" if mask.any() else "-"

    lines += [
        "",
        f"Validation loss against full, weighted by validation nodes: {weighted(one)} points over the {int(one.sum())} classes "
        f"with one synthetic node, {weighted(more)} points over the {int(more.sum())} with more.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        write_section(args.write, f"per-class-{args.dataset}-{args.ratio}", markdown)


if __name__ == "__main__":
    main()
