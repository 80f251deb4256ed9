"""Transfer across evaluation architectures: each method's bundle, distilled once with the
dataset's recipe (the kernel was built for a GCN), trained with every architecture of `talk
evaluate --model-type` and tested on the real graph, against that architecture trained on every
real training node.

    python -m benchmarks.transfer --dataset cora --ratio 0.01 --runs 3 --write docs/results.md

Training is the gnn protocol's (epoch chosen on the real validation nodes); `--runs` seeds per
cell. Cells are test accuracy mean ± std (information: nothing here chooses a setting); the
full row is the reference of each column, from the evaluate cache when an earlier run made it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmarks.common import add_set_option, prepared_dataset, recipe_settings, run_header, write_section
from talk_cli import pipeline
from talk_cli.evaluate import ARCHITECTURES, EvalSettings

METHODS = ("talk", "kernel-features", "herding", "kcenter", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    add_set_option(parser)
    parser.add_argument("--write", type=Path, help="update the transfer-DATASET-RATIO section of this markdown file")
    args = parser.parse_args()

    changes = dict(args.set)
    # Every method's settings are checked before hours of work start.
    by_method = {m: recipe_settings(parser, args.dataset, changes, method=m, ratio=args.ratio) for m in args.methods}
    base = next(iter(by_method.values()))
    prepared = prepared_dataset(args.dataset, args.data_root, base.max_length)
    command = "python -m benchmarks.transfer " + " ".join(sys.argv[1:])
    rows: dict[str, dict[str, dict]] = {"full": {}}
    for architecture in ARCHITECTURES:
        evaluation, _ = pipeline.evaluate(prepared, settings=EvalSettings(architecture=architecture, runs=args.runs))
        rows["full"][architecture] = evaluation.result
    for method in args.methods:
        with tempfile.TemporaryDirectory() as tmp:
            bundle, _ = pipeline.distill(prepared, by_method[method], Path(tmp) / "bundle")
        rows[method] = {}
        for architecture in ARCHITECTURES:
            evaluation, _ = pipeline.evaluate(prepared, bundle, EvalSettings(architecture=architecture, runs=args.runs))
            rows[method][architecture] = evaluation.result
        print(method, {a: round(r["test_accuracy_mean"], 4) for a, r in rows[method].items()}, flush=True)

    def cell(method: str, architecture: str) -> str:
        result = rows[method][architecture]
        text = f"{100 * result['test_accuracy_mean']:.2f} ± {100 * result['test_accuracy_std']:.2f}"
        if method != "full":
            text += f" ({100 * result['test_accuracy_mean'] / rows['full'][architecture]['test_accuracy_mean']:.1f}%)"
        return text

    table = [
        *run_header(command),
        "",
        f"Test accuracy % at ratio {args.ratio} ({args.runs} runs per cell; in brackets, % of the same architecture trained on full data)",
        "",
        "| method | " + " | ".join(ARCHITECTURES) + " |",
        "|---|" + "---:|" * len(ARCHITECTURES),
        *(f"| {method} | " + " | ".join(cell(method, a) for a in ARCHITECTURES) + " |" for method in rows),
    ]
    print("\n".join(table))
    if args.write:
        write_section(args.write, f"transfer-{args.dataset}-{args.ratio}", "\n".join(table))


if __name__ == "__main__":
    main()
