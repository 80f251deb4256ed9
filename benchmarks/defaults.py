"""Choose defaults on graphs nobody tuned for: each variant of the defaults (`--recipe none`, with
`--set KEY=VALUE` changes) distilled at 0.01 per distillation seed and judged on validation.

    python benchmarks/proxies.py --out /tmp/proxies
    python benchmarks/defaults.py --data-root /tmp/proxies --datasets arxiv-sparse cora-half \\
        --variants "" "allocation_power=0.5" "layers=2" --write docs/method.md
    python benchmarks/defaults.py --data-root ../shared/datasets --datasets cora arxiv_2023 \\
        --variants "" "min_class_nodes=2" --section class-floor --write docs/method.md

Per variant: the GCN validation accuracy `talk distill` selected by (mean over seeds), and the
gnn protocol's validation accuracy of a GCN trained on each bundle (`talk evaluate --runs 3`, mean
over seeds and runs): the two decide. Test accuracy and % of the full-data reference are shown
for information only (never used to choose).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_header, write_section  # noqa: E402
from cost import talk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--variants", nargs="+", default=[""], help='space-separated changes per variant, KEY=VALUE or a flag alone (soft_labels); "" = the defaults')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--section", default="defaults", help="the written sections are named SECTION-DATASET")
    args = parser.parse_args()
    header = run_header("python benchmarks/defaults.py " + " ".join(f'"{a}"' if " " in a or not a else a for a in sys.argv[1:]), f" ({args.threads} threads)")
    for dataset in args.datasets:
        common = ["--dataset", dataset, "--data-root", args.data_root]
        full = talk("evaluate", "--full", *common, "--runs", "3", threads=args.threads, device="cpu")[1]
        rows = []
        for variant in args.variants:
            changes = [f"--{key.replace('_', '-')}{sep}{value}" for key, sep, value in (item.partition("=") for item in variant.split())]
            picked, validation, test = [], [], []
            with tempfile.TemporaryDirectory() as tmp:
                for seed in args.seeds:
                    made = talk("distill", *common, "--recipe", "none", "--ratio", "0.01", "--seed", str(seed), *changes,
                                "--out", f"{tmp}/b", "--force", threads=args.threads, device="cpu")[1]  # fmt: skip
                    result = talk("evaluate", f"{tmp}/b", *common, "--runs", "3", threads=args.threads, device="cpu")[1]
                    picked.append(made["val_accuracy"])
                    validation.append(result["val_accuracy_mean"])
                    test.append(result["test_accuracy_mean"])
            rows.append(
                f"| {variant or 'defaults'} | {statistics.fmean(picked):.4f} | {statistics.fmean(validation):.4f} | "
                f"{100 * statistics.fmean(test):.2f} ± {100 * statistics.pstdev(test):.2f}% | {100 * statistics.fmean(test) / full['test_accuracy_mean']:.1f}% |"
            )
            print(rows[-1], flush=True)
        body = "\n".join([
            f"#### {dataset}: defaults on validation", "", *header, "",
            f"Full-data reference (gnn protocol, 3 runs): {100 * full['test_accuracy_mean']:.2f}% test (information only).", "",
            "| variant (`--recipe none` plus) | GCN val, as selected (mean over seeds) | gnn-protocol val (mean) | test (info) | % of full (info) |",
            "|---|---:|---:|---:|---:|",
            *rows,
        ])  # fmt: skip
        print(body, flush=True)
        if args.write:
            write_section(args.write, f"{args.section}-{dataset}", body)


if __name__ == "__main__":
    main()
