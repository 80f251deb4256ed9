"""The joint protocol's training settings, chosen on validation: one TaLK bundle (the dataset's
recipe) fine-tuned with LM + GCN under each (LM learning rate, epochs, probe epochs, GCN fine-tuning
rate) setting.

    python -m benchmarks.joint_settings --dataset cora --ratio 0.01 --runs 2 --write docs/logs/evaluate-tuning.md
    python -m benchmarks.joint_settings --dataset arxiv_2023 --grid 1e-5:100 --device cuda   # on a GPU
    python -m benchmarks.joint_settings --dataset cora --full --runs 1 --grid 2e-5:5:200:0.001

`--full` grids the joint full-data reference instead (`talk evaluate --full --protocol joint`: LM +
GCN on every real training node in batches); its epochs are passes over the training nodes.

Validation accuracy (the best check, every --eval-every epochs) decides; test accuracy is for
information only. lm_lr 0 keeps the pretrained LM (the gnn protocol's features, trained the
joint protocol's way). Probe epochs: the GCN alone on the pretrained LM's features before
fine-tuning together, and the GCN's learning rate while it is fine-tuned with the LM (each the
protocol's default when a grid entry leaves it out); an epoch of 0 in "best epochs" is that
probed GCN on the pretrained LM, and "val probe / fine-tuned" gives the probed GCN's validation
accuracy and that of each run's best fine-tuned check (means over the runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

from benchmarks.common import add_device_option, prepared_dataset, resolved_device, run_header, write_section
from talk_cli import pipeline
from talk_cli.evaluate import EvalSettings, evaluate_joint, evaluate_joint_full, training_defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--grid", nargs="+", default=["2e-5:30", "2e-5:100", "5e-6:100", "0:100"], metavar="LM_LR:EPOCHS[:PROBE_EPOCHS[:FINETUNE_LR]]")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="grid the joint full-data reference, not a bundle (--ratio unused)")
    parser.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        help="checks fit a fresh GCN on the current LM's features (the protocol's default), or classify with the GCN fine-tuned alongside",
    )
    parser.add_argument(
        "--write", type=Path, help="update the joint-settings-DATASET-RATIO (--full: joint-reference-DATASET) section, or --section, of this markdown file"
    )
    parser.add_argument("--section", help="the section's name, when not the default above")
    add_device_option(parser)
    args = parser.parse_args()
    device = resolved_device(parser, args.device)

    settings, _ = pipeline.distill_settings(args.dataset, ratio=args.ratio)
    prepared = prepared_dataset(args.dataset, args.data_root, settings.max_length, device)
    if args.full:
        train = partial(evaluate_joint_full, prepared.tag)
        section = f"joint-reference-{args.dataset}"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bundle, _ = pipeline.distill(prepared, settings, Path(tmp) / "bundle")
        train = partial(evaluate_joint, bundle, prepared.tag)
        section = f"joint-settings-{args.dataset}-{args.ratio}"
    command = "python -m benchmarks.joint_settings " + " ".join(sys.argv[1:])
    table = [
        *run_header(command, device=device),
        "",
        f"| LM lr | {'passes' if args.full else 'epochs'} | probe epochs | GCN fine-tuning lr | val acc ({args.runs} runs) | val probe / fine-tuned | test acc (info) | best epochs | s per run |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for entry in args.grid:
        lm_lr, epochs, *optional = entry.split(":")
        given = {name: kind(value) for (name, kind), value in zip((("probe_epochs", int), ("finetune_lr", float)), optional)}
        chosen = {"runs": args.runs, "lm_lr": float(lm_lr), "epochs": int(epochs), "eval_every": args.eval_every}
        if args.refit is not None:
            chosen["refit"] = args.refit
        evaluation = EvalSettings(**training_defaults("joint", args.full) | chosen | given)
        summary = train(prepared.lm, prepared.features, evaluation, settings.max_length, prepared.device)
        result = summary.as_dict()
        epochs_chosen = ", ".join(str(run.best_epoch) for run in summary.runs)
        probe_and_tuned = f"{result['probe_val_mean']:.4f} / {result['fine_tuned_val_mean']:.4f}" if "probe_val_mean" in result else "-"
        table.append(
            f"| {lm_lr} | {epochs} | {evaluation.probe_epochs} | {evaluation.finetune_lr:g} | {result['val_accuracy_mean']:.4f} | {probe_and_tuned} "
            f"| {result['test_accuracy_mean']:.4f} "
            f"| {epochs_chosen} | {result['train_seconds_mean']:.0f} |"
        )
        print(table[-1], flush=True)
        if args.write:
            write_section(args.write, args.section or section, "\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
