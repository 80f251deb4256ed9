"""Choose defaults on graphs nobody tuned for: each variant of the defaults (`--recipe none`, with
`--set KEY=VALUE` changes) distilled at 0.01 per distillation seed and judged on validation.

    python -m benchmarks.proxies --out /tmp/proxies
    python -m benchmarks.defaults --data-root /tmp/proxies --datasets arxiv-sparse cora-half \\
        --variants "" "allocation_power=0.5" "layers=2" --write docs/logs/method-evidence.md
    python -m benchmarks.defaults --data-root ../shared/datasets --datasets cora arxiv_2023 \\
        --variants "" "min_class_nodes=2" --section class-floor --write docs/logs/method-evidence.md
    python -m benchmarks.defaults --data-root ../shared/datasets --datasets demo cora arxiv_2023 \\
        --recipe shipped --variants init=texts init=vocab --joint-runs 1 --section init --write docs/privacy.md

Per variant: the GCN validation accuracy `talk distill` selected by (mean over seeds), and the
gnn protocol's validation accuracy of a GCN trained on each bundle (`talk evaluate --runs 3`, mean
over seeds and runs): the two decide; with `--joint-runs N`, also the joint protocol's (the LM
fine-tuned on the bundle's token sequences). Each row also shows the distillation seconds and what
the bundles reveal of the real texts (mean and worst word-4-gram overlap, `privacy` in the manifest). Test accuracy and % of the full-data reference are shown
for information only (never used to choose).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import run_header, write_section
from benchmarks.cost import talk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument(
        "--variants", nargs="+", default=[""], help='space-separated changes per variant, KEY=VALUE or a flag alone (soft_labels); "" = the defaults'
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", default="none", help="none: the defaults alone; shipped: each dataset's shipped recipe (what `talk distill` applies)")
    parser.add_argument("--eval-runs", type=int, default=3, help="gnn-protocol runs per bundle (0: judge by the selected validation alone, with no evaluation)")
    parser.add_argument("--joint-runs", type=int, default=0, help="also judge each bundle under the joint protocol with this many runs (0: not)")
    parser.add_argument("--model", help="the LM (a folder or hub id; default: talk's, all-MiniLM-L6-v2)")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--section", default="defaults", help="the written sections are named SECTION-DATASET")
    args = parser.parse_args()
    header = run_header("python -m benchmarks.defaults " + " ".join(f'"{a}"' if " " in a or not a else a for a in sys.argv[1:]), f" ({args.threads} threads)")
    for dataset in args.datasets:
        common = ["--dataset", dataset, "--data-root", args.data_root, *(["--model", args.model] if args.model else [])]
        full = talk("evaluate", "--full", *common, "--runs", "3", threads=args.threads, device="cpu")[1] if args.eval_runs else None
        recipe = [] if args.recipe == "shipped" else ["--recipe", args.recipe]
        rows = []
        for variant in args.variants:
            changes = [f"--{key.replace('_', '-')}{sep}{value}" for key, sep, value in (item.partition("=") for item in variant.split())]
            picked, validation, test, joint, joint_test, seconds, overlap, worst, warm = [], [], [], [], [], [], [], [], []
            with tempfile.TemporaryDirectory() as tmp:
                for seed in args.seeds:
                    made = talk("distill", *common, *recipe, "--ratio", "0.01", "--seed", str(seed), *changes,
                                "--out", f"{tmp}/b", "--force", threads=args.threads, device="cpu")[1]  # fmt: skip
                    picked.append(made["val_accuracy"])
                    if made.get("warm_start"):
                        warm.append(made["warm_start"] | {"shipped": made["val_accuracy"], "token_loop": made["stopped_at"] != 0})
                    if args.eval_runs:
                        result = talk("evaluate", f"{tmp}/b", *common, "--runs", str(args.eval_runs), threads=args.threads, device="cpu")[1]
                        validation.append(result["val_accuracy_mean"])
                        test.append(result["test_accuracy_mean"])
                    seconds.append(made["distill_seconds"])
                    overlap.append(made["privacy"]["mean_ngram_overlap"])
                    worst.append(made["privacy"]["max_ngram_overlap"])
                    if args.joint_runs:
                        tuned = talk(
                            "evaluate", f"{tmp}/b", *common, "--protocol", "joint", "--runs", str(args.joint_runs), threads=args.threads, device="cpu"
                        )[1]
                        joint.append(tuned["val_accuracy_mean"])
                        joint_test.append(tuned["test_accuracy_mean"])
            judged = f"{statistics.fmean(validation):.4f} | " if test else "not run | "
            informed = (
                f"{100 * statistics.fmean(test):.2f} ± {100 * statistics.pstdev(test):.2f}% | {100 * statistics.fmean(test) / full['test_accuracy_mean']:.1f}% |"
                if test
                else "- | - |"
            )
            warm_cells = (
                " / ".join(f"{statistics.fmean(w[key] for w in warm):.4f}" for key in ("free_val_accuracy", "inverted_val_accuracy", "shipped"))
                + f" | {statistics.fmean(w['inversion_steps'] for w in warm):.0f} | {sum(w['token_loop'] for w in warm)} of {len(warm)} |"
                if warm
                else "- | - | - |"
            )
            rows.append(
                f"| {variant or 'defaults'} | {statistics.fmean(picked):.4f} | {warm_cells} {judged}"
                + (f"{statistics.fmean(joint):.4f} | " if joint else "")
                + f"{statistics.fmean(seconds):.1f} | {100 * statistics.fmean(overlap):.1f}% / {100 * max(worst):.1f}% | {informed}"
                + (f" {100 * statistics.fmean(joint_test):.2f}% |" if joint_test else "")
            )
            print(rows[-1], flush=True)
        lm = f" with {Path(args.model).name}" if args.model else ""
        body = "\n".join([
            f"#### {dataset}{lm}: defaults on validation", "", *header, "",
            (f"Full-data reference (gnn protocol, 3 runs): {100 * full['test_accuracy_mean']:.2f}% test (information only)." if full else
             "No gnn-protocol evaluation (`--eval-runs 0`): the selected GCN validation decides."), "",
            f"| variant ({'`' + ' '.join(recipe) + '`' if recipe else 'the shipped recipe'} plus) | GCN val, as selected (mean over seeds) | "
            + "warm start: free / inverted / shipped GCN val (mean) | inversion steps (mean) | token loop ran (seeds) | gnn-protocol val (mean) | "
            + (f"joint-protocol val (mean, {args.joint_runs} run(s) per seed) | " if args.joint_runs else "")
            + "distil s (mean) | 4-gram overlap, mean / worst node | test (info) | % of full (info) |"
            + (" joint-protocol test (info) |" if args.joint_runs else ""),
            "|---|---:|---:|---:|---:|---:|" + ("---:|" if args.joint_runs else "") + "---:|---:|---:|---:|" + ("---:|" if args.joint_runs else ""),
            *rows,
        ])  # fmt: skip
        print(body, flush=True)
        if args.write:
            write_section(args.write, f"{args.section}-{dataset}" + (f"-{Path(args.model).name}" if args.model else ""), body)


if __name__ == "__main__":
    main()
