"""Ablations behind the defaults of docs/method.md: one setting changed at a time.

    python benchmarks/ablations.py --dataset cora --ratio 0.01 --write docs/method.md

Every row distils with the base settings (the dataset's recipe in talk_cli/recipes/, at --ratio and
--steps) except the one named. The decision metric is the
validation KRR accuracy of the selected synthetic set (selection never looks at test nodes; rows
with `select=gcn` chose their step by a GCN's validation accuracy, which favours their GCN column);
the test KRR accuracy is printed for information only. Each row's bundle is also evaluated
with the gnn protocol of `talk evaluate` (GCN, a few runs): its validation accuracy is a
second decision signal and its test accuracy is again for information only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_header, write_section  # noqa: E402

from talk_cli import pipeline  # noqa: E402
from talk_cli.distill import DistillSettings, Distiller, distill, make_bundle  # noqa: E402
from talk_cli.encode import EncodeSettings, load_language_model  # noqa: E402
from talk_cli.evaluate import EvalSettings, evaluate_bundle  # noqa: E402

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
    ("invert_steps=100", {"invert_steps": 100}),
    ("select=gcn", {"select": "gcn"}),
    ("invert_steps=100,select=gcn", {"invert_steps": 100, "select": "gcn"}),
    ("method=kernel-features", {"method": "kernel-features"}),
    ("method=kernel-features,select=gcn", {"method": "kernel-features", "select": "gcn"}),
]


def markdown(command: str, base: DistillSettings, gcn_runs: int, rows: list[tuple]) -> str:
    shown = ("structure", "kernel", "hops", "layers", "loss", "soft_labels", "seq_len", "lr", "ridge", "inner_every", "invert_steps", "select", "krr_batch", "max_length")
    table = [
        *run_header(command),
        f"Base settings: `{ {k: v for k, v in base.as_dict().items() if k in shown} }`",
        "",
        f"| variant | val KRR acc | test KRR acc (info) | GCN val acc ({gcn_runs} runs) | GCN test acc (info) | best step | distil s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    table += [f"| {n} | {v:.4f} | {t:.4f} | {gv:.4f} | {gt:.4f} | {s} | {sec:.1f} |" for n, v, t, gv, gt, s, sec in rows]
    return "\n".join(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change the recipe's base settings")
    parser.add_argument("--only", nargs="*", help="run only these variant names")
    parser.add_argument("--gcn-runs", type=int, default=3, help="GCN runs per row (the gnn protocol of talk evaluate)")
    parser.add_argument("--write", type=Path, help="update the ablation section of this markdown file (after every row)")
    parser.add_argument("--section", help="name of that section (default: ablation-DATASET-RATIO)")
    args = parser.parse_args()

    changes = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    base, _ = pipeline.distill_settings(args.dataset, args.dataset, **changes, ratio=args.ratio, steps=args.steps)
    prepared = pipeline.prepare(pipeline.load_dataset(args.dataset, args.data_root), settings=EncodeSettings(max_length=base.max_length))
    tag, lm, features = prepared.tag, prepared.lm, prepared.features
    test_nodes = torch.nonzero(tag.test_mask).flatten()
    command = "python benchmarks/ablations.py " + " ".join(sys.argv[1:])
    rows = []
    for name, change in VARIANTS:
        if args.only and name not in args.only:
            continue
        settings = dataclasses.replace(base, **change)
        started = time.perf_counter()
        distiller = Distiller(tag, lm, features, settings, torch.device("cpu"))
        outcome = distill(distiller)
        seconds = time.perf_counter() - started
        with torch.no_grad():  # the selected state is loaded; test accuracy is reported, never used
            selected = distiller.features().double()
            val = distiller.krr_accuracy(selected)  # the KRR column, whatever `select` chose the step by
            scores = distiller.predict(selected, test_nodes)
        test = float((scores.argmax(dim=1) == tag.labels[test_nodes]).float().mean())
        gcn = evaluate_bundle(
            make_bundle(tag, lm, settings, outcome), tag, features, EvalSettings(runs=args.gcn_runs), torch.device("cpu")
        ).as_dict()
        rows.append((name, val, test, gcn["val_accuracy_mean"], gcn["test_accuracy_mean"], outcome.best_step, seconds))
        print(f"{name:24s} {rows[-1][1:]}", flush=True)
        if args.write:  # a long ablation keeps what it has measured if it is stopped
            write_section(args.write, args.section or f"ablation-{args.dataset}-{args.ratio}", markdown(command, base, args.gcn_runs, rows))
        lm = load_language_model()  # fresh pretrained weights for the next row (the inner loop trains them)
    print(markdown(command, base, args.gcn_runs, rows))


if __name__ == "__main__":
    main()
