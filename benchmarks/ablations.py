"""Ablations behind the defaults of docs/method.md: one setting changed at a time.

    python -m benchmarks.ablations --dataset cora --ratio 0.01 --write docs/logs/method-evidence.md

Every row distils with the base settings (the dataset's recipe in talk_cli/recipes/, or --recipe, at
--ratio and --steps) except the one named. The decision metric is the
validation KRR accuracy of the selected synthetic set (selection never looks at test nodes; rows
with `select=gcn` chose their step by a GCN's validation accuracy, which favours their GCN column);
the test KRR accuracy is printed for information only. Each row's bundle is also evaluated
with the gnn protocol of `talk evaluate` (GCN, a few runs): its validation accuracy is a
second decision signal and its test accuracy is again for information only. With --joint-runs,
also with the joint protocol (LM + GCN fine-tuned on the bundle): the signal that decides the
inner loop's settings, since the inner loop exists to serve LM training.
With --holdout, distillation selects on half of the validation nodes and the GCN and joint
columns score the other half, so a variant whose selection reads validation (every one does, and
`select=gcn` by the very model the GCN column trains) is not judged on the nodes it was chosen on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import add_set_option, prepared_dataset, recipe_settings, run_header, write_section
from talk_cli.data import TAG
from talk_cli.distill import Distiller, DistillSettings, KRRFit, distill, krr_accuracy, make_bundle
from talk_cli.encode import load_language_model
from talk_cli.evaluate import EvalSettings, evaluate_bundle, evaluate_joint, training_defaults

VARIANTS: list[tuple[str, dict]] = [
    ("base", {}),
    ("structure=identity", {"structure": "identity"}),
    ("structure=knn", {"structure": "knn"}),
    ("structure=learned", {"structure": "learned"}),
    ("kernel=interleaved", {"kernel": "interleaved"}),
    ("hops=1", {"hops": 1}),
    ("hops=3", {"hops": 3}),
    ("layers=2", {"layers": 2}),
    ("loss=ce", {"loss": "ce"}),
    ("soft_labels=true", {"soft_labels": True}),
    ("seq_len=16", {"seq_len": 16}),
    ("seq_len=32", {"seq_len": 32}),
    ("seq_len=64", {"seq_len": 64}),
    ("lr=0.003", {"lr": 0.003}),
    ("lr=0.03", {"lr": 0.03}),
    ("steps=200", {"steps": 200}),
    ("inner_every=25", {"inner_every": 25}),
    ("inner_every=10", {"inner_every": 10}),
    ("inner_every=10,inner_refresh=0", {"inner_every": 10, "inner_refresh": 0}),
    ("inner_every=25,inner_refresh=256", {"inner_every": 25, "inner_refresh": 256}),
    # Restarted rounds train as the joint protocol does (30 steps, LM lr 2e-5 from the pretrained LM).
    ("inner_every=25,restart", {"inner_every": 25, "inner_restart": True, "inner_steps": 30, "inner_lr": 2e-5}),
    ("inner_every=10,restart", {"inner_every": 10, "inner_restart": True, "inner_steps": 30, "inner_lr": 2e-5}),
    # The same rounds at the joint protocol's LM rate since 2026-11-25 (5e-6), and at its length too (100 steps).
    ("inner_every=25,restart,inner_lr=5e-6", {"inner_every": 25, "inner_restart": True, "inner_steps": 30, "inner_lr": 5e-6}),
    ("inner_every=25,restart,inner_steps=100,inner_lr=5e-6", {"inner_every": 25, "inner_restart": True, "inner_steps": 100, "inner_lr": 5e-6}),
    ("invert_steps=100", {"invert_steps": 100}),
    ("select=gcn", {"select": "gcn"}),
    ("invert_steps=100,select=gcn", {"invert_steps": 100, "select": "gcn"}),
    ("allocation_power=0.5", {"allocation_power": 0.5}),
    ("allocation_power=0.75", {"allocation_power": 0.75}),
    ("method=kernel-features", {"method": "kernel-features"}),
    ("method=kernel-features,select=gcn", {"method": "kernel-features", "select": "gcn"}),
    ("method=kernel-features,allocation_power=0.5", {"method": "kernel-features", "allocation_power": 0.5}),
]


def markdown(command: str, base: DistillSettings, gcn_runs: int, joint_runs: int, notes: list[str], rows: list[tuple]) -> str:
    shown = (
        "structure", "kernel", "hops", "layers", "loss", "soft_labels", "seq_len", "lr", "ridge", "inner_every",
        "inner_steps", "inner_lr", "inner_restart", "inner_refresh", "invert_steps", "select", "allocation_power", "krr_batch",
        "max_length",
    )  # fmt: skip
    joint = f" joint val acc ({joint_runs} runs) | joint test acc (info) |" if joint_runs else ""
    table = [
        *run_header(command),
        f"Base settings: `{ {k: v for k, v in base.as_dict().items() if k in shown} }`  ",
        "  \n".join(notes),
        "",
        f"| variant | val KRR acc | test KRR acc (info) | GCN val acc ({gcn_runs} runs) | GCN test acc (info) |{joint} best step | distil s |",
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if joint_runs else "") + "---:|---:|",
    ]
    for name, val, test, gcn, joint_scores, step, seconds in rows:
        cells = [f"{val:.4f}", f"{test:.4f}", f"{gcn['val_accuracy_mean']:.4f}", f"{gcn['test_accuracy_mean']:.4f}"]
        if joint_scores:
            cells += [f"{joint_scores['val_accuracy_mean']:.4f}", f"{joint_scores['test_accuracy_mean']:.4f}"]
        table.append(f"| {name} | {' | '.join(cells)} | {step} | {seconds:.1f} |")
    return "\n".join(table)


def validation_halves(tag: TAG) -> tuple[TAG, TAG]:
    """The TAG twice, each with half of its validation nodes (a fixed random half, so that every row
    and every run of the script splits alike): the first to select on, the second to judge with.
    A step chosen as best on some nodes scores above its worth there; the other half is unbiased."""
    val = torch.nonzero(tag.val_mask).flatten()
    shuffled = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(0))]
    halves = []
    for part in shuffled.tensor_split(2):
        mask = torch.zeros_like(tag.val_mask)
        mask[part] = True
        halves.append(dataclasses.replace(tag, val_mask=mask))
    return halves[0], halves[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--recipe", help="the base settings' recipe: a file, a shipped name, or none for the defaults (default: the dataset's)")
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=100)
    add_set_option(parser)
    parser.add_argument("--only", nargs="*", help="run only these variant names")
    parser.add_argument("--gcn-runs", type=int, default=3, help="GCN runs per row (the gnn protocol of talk evaluate)")
    parser.add_argument("--joint-runs", type=int, default=0, help="joint-protocol runs per row (0: no joint columns)")
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=1000,
        help="first seed of the GCN and joint runs (default 1000: `select=gcn` scores each step with a GCN run seeded by "
        "the distillation seed, and an evaluation run with that seed would train the same GCN and favour the selected step; "
        "sections written before 2026-11-24 ran with 0)",
    )
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="split the validation nodes in two halves (seeded): distillation selects on one, and the GCN and joint "
        "validation columns score the other, which no selection read",
    )
    parser.add_argument("--write", type=Path, help="update the ablation section of this markdown file (after every row)")
    parser.add_argument("--section", help="name of that section (default: ablation-DATASET-RATIO)")
    args = parser.parse_args()
    unknown = sorted(set(args.only or ()) - {name for name, _ in VARIANTS})
    if unknown:
        parser.error(f"--only: no variant named {', '.join(unknown)} (variants: {', '.join(name for name, _ in VARIANTS)})")

    base = recipe_settings(parser, args.dataset, dict(args.set), args.recipe, ratio=args.ratio, steps=args.steps)
    prepared = prepared_dataset(args.dataset, args.data_root, base.max_length)
    tag, lm, features = prepared.tag, prepared.lm, prepared.features
    # `selecting`: the TAG whose validation nodes distillation selects on; `judged`: the one whose
    # validation nodes the GCN and joint columns score. The same TAG unless --holdout.
    selecting = judged = tag
    notes = [f"Evaluation runs are seeded {args.eval_seed}, {args.eval_seed + 1}, ..."]
    if args.holdout:
        selecting, judged = validation_halves(tag)
        notes.append(
            f"Held out: distillation selected on {int(selecting.val_mask.sum())} validation nodes; the GCN and joint validation "
            f"columns score the other {int(judged.val_mask.sum())}, which no selection read."
        )
    test_nodes = torch.nonzero(tag.test_mask).flatten()
    command = "python -m benchmarks.ablations " + " ".join(sys.argv[1:])
    rows = []
    for name, change in VARIANTS:
        if args.only and name not in args.only:
            continue
        settings = dataclasses.replace(base, **change)
        started = time.perf_counter()
        distiller = Distiller.start(selecting, lm, features, settings, torch.device("cpu"))
        outcome = distill(distiller)
        seconds = time.perf_counter() - started
        with torch.no_grad():  # the selected state is loaded; test accuracy is reported, never used
            selected = distiller.features().double()
            val = krr_accuracy(distiller.real, distiller.synthetic, selected, settings.ridge)  # the KRR column, whatever `select` chose the step by
            scores = KRRFit(distiller.real, distiller.synthetic, selected, settings.ridge).scores(test_nodes)
        test = float((scores.argmax(dim=1) == tag.labels[test_nodes]).float().mean())
        bundle = make_bundle(selecting, lm, settings, outcome)
        gcn = evaluate_bundle(bundle, judged, features, EvalSettings(runs=args.gcn_runs, seed=args.eval_seed), torch.device("cpu")).as_dict()
        joint = None
        if args.joint_runs:
            joint_settings = EvalSettings(runs=args.joint_runs, seed=args.eval_seed, **training_defaults("joint", False))
            joint = evaluate_joint(bundle, judged, lm, features, joint_settings, settings.max_length, torch.device("cpu")).as_dict()
        rows.append((name, val, test, gcn, joint, outcome.best_step, seconds))
        print(markdown(command, base, args.gcn_runs, args.joint_runs, notes, rows).splitlines()[-1], flush=True)
        if args.write:  # a long ablation keeps what it has measured if it is stopped
            section = args.section or f"ablation-{args.dataset}-{args.ratio}"
            write_section(args.write, section, markdown(command, base, args.gcn_runs, args.joint_runs, notes, rows))
        lm = load_language_model()  # fresh pretrained weights for the next row (the inner loop trains them)
    print(markdown(command, base, args.gcn_runs, args.joint_runs, notes, rows))


if __name__ == "__main__":
    main()
