"""The results table: every method at every ratio on every dataset, evaluated by `talk evaluate`'s
code, against the full-data reference. `--write docs/results.md` puts each section into the results log
(docs/logs/results-sections.md) and regenerates the page from it (`results_page.py`).

    python -m benchmarks.results --write docs/results.md
    python -m benchmarks.results --datasets cora --runs 10 --joint --write docs/results.md   # one dataset's section
    python -m benchmarks.results --datasets --joint cora:0.01 --joint-runs 3 --write docs/results.md  # joint only
    python -m benchmarks.results --datasets arxiv_2023 --ratios 0.01 --seeds 3 --runs 2 --joint --write docs/results.md
    python -m benchmarks.results --datasets --joint arxiv_2023:0.02 --device cuda --write docs/results.md  # on a GPU: its own section, named ...-cuda
    python -m benchmarks.results --datasets --joint cora:0.01 --methods random --joint-section results-joint-cora-0.01-random --write docs/results.md

Each (dataset, method, ratio) runs in a fresh child process: distil with the dataset's recipe
once per distillation seed (`--seeds`), then the gnn protocol on each bundle (GCN, `--runs`
seeds); its peak RSS covers all of it. A section whose ratios are not the default three is
written under its own name, so it does not replace the three-ratio table; so is a joint section
for other dataset:ratio pairs than the default two. The joint protocol
(LM fine-tuned with the GNN, the real graph re-encoded at each validation) runs on the datasets
and ratios named by --joint, against the joint full-data reference (LM + GNN trained on every
real training node; computed once and cached, which takes long: see docs/evaluate.md).
`--write` updates the document after every row; a run that is stopped leaves the section it was
writing marked partial, with the rows it measured. Progress goes to stderr: each row's line, and
between them a line as each evaluation run of the row ends (and at most every 10 minutes within
one), with the time left at that pace.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import add_device_option, prepared_dataset, resolved_device, run_header, run_json, write_section
from talk_cli.distill import METHODS as REGISTERED
from talk_cli.distill import NO_RECIPE
from talk_cli.memory import peak_rss_mib

METHODS = ("talk", "kernel-features", "herding", "kcenter", "random")


DEFAULTS = "/defaults"  # a method name with this suffix distils with the defaults alone (`--recipe none`)
JOINT_NOTE = (
    "The GCN is first trained alone on the pretrained LM's features ({probe_epochs} probe epochs; 0: none), then the LM is "
    "fine-tuned with it on the bundle ({epochs} epochs, LM lr {lm_lr}, GCN lr {finetune_lr} once probed); every {eval_every} epochs every real "
    "text is re-encoded with the fine-tuned LM and classified{refit_note}, and the epoch best on validation is kept, the probed GCN "
    "included (docs/evaluate.md); *best epochs* lists each run's (0: the probed GCN on the pretrained LM), and *val % probe / "
    "fine-tuned* the mean validation accuracy of the probed GCN and of each run's best fine-tuned epoch. "
    "*full (joint)* is `talk evaluate --full --protocol joint`: LM + GCN trained on every real training node in "
    "batches (the same probe, then {full[epochs]} epochs, LM lr {full[lm_lr]}, GCN lr {full[finetune_lr]}, one run, read from the reference cache when an earlier run made it; "
    "its *eval s* is then that run's training time); its *% of frozen full* compares it with the frozen-LM GCN. *% of joint "
    "full* divides by it; *% of frozen full* by the gnn-protocol full reference. kernel-features has no row: its bundles "
    "hold feature vectors, no texts for the LM to learn from."
)


LINE_EVERY_S = 600  # progress lines within one evaluation run come at most this often
PARTIAL = "*Partial: the run that writes this section was stopped, or is still running, after the rows above.*"


def joint_note(probe_epochs: int | None) -> str:
    from talk_cli.evaluate import EvalSettings, training_defaults

    bundle, full = (EvalSettings(**training_defaults("joint", full) | probe_setting(probe_epochs)) for full in (False, True))
    refit_note = " by a GCN fitted afresh, as the probe was, on the features that LM gives" if bundle.refits else " by the GCN fine-tuned with it"
    return JOINT_NOTE.format(**dataclasses.asdict(bundle), full=dataclasses.asdict(full), refit_note=refit_note)


def probe_setting(probe_epochs: int | None) -> dict:
    """The joint protocol's probe epochs where `--joint-probe-epochs` sets them (else its default)."""
    return {} if probe_epochs is None else {"probe_epochs": probe_epochs}


def best_epochs(summary: dict) -> str:
    """The epoch each joint run selected; references cached before it was recorded have none."""
    return ", ".join(str(epoch) for epoch in summary.get("best_epochs", [])) or "-"


def validations(summary: dict) -> str:
    """The probe's and the best fine-tuned epoch's mean validation accuracy of joint runs (none
    without a probe, or in results recorded before them)."""
    if "probe_val_mean" not in summary:
        return "-"
    return f"{pct(summary['probe_val_mean'])} / {pct(summary['fine_tuned_val_mean'])}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def pooled(summaries: list[dict]) -> dict:
    """One summary over every (distillation seed, evaluation run): the mean of the per-seed means and
    the standard deviation over all runs (each seed ran the same number of runs)."""
    out = dict(summaries[0])
    for metric in ("test_accuracy", "test_macro_f1"):
        means = [s[f"{metric}_mean"] for s in summaries]
        mean = statistics.fmean(means)
        second_moment = statistics.fmean(s[f"{metric}_std"] ** 2 + s[f"{metric}_mean"] ** 2 for s in summaries)
        out[f"{metric}_mean"], out[f"{metric}_std"] = mean, max(second_moment - mean**2, 0.0) ** 0.5
    out["per_seed_test_accuracy"] = [s["test_accuracy_mean"] for s in summaries]
    out["runs"] = sum(s["runs"] for s in summaries)
    return out


def scores(summary: dict) -> str:
    """The 'test acc % | macro-F1 %' cells of a row, each mean ± std."""
    return (
        f"{pct(summary['test_accuracy_mean'])} ± {pct(summary['test_accuracy_std'])} "
        f"| {pct(summary['test_macro_f1_mean'])} ± {pct(summary['test_macro_f1_std'])}"
    )


def run_progress(label: str, settings):
    """`on_epoch` of one evaluation, made as it starts: a stderr line as each of its runs ends its
    epochs, and within a run at most every LINE_EVERY_S seconds (the joint reference reports its
    batches as fractions of an epoch, and on arxiv_2023 it takes 40 to 80 minutes), with the
    time left at that pace."""
    started = last_line = time.perf_counter()
    epochs_done, total = 0.0, settings.runs * settings.epochs

    def on_epoch(epochs: float) -> None:
        nonlocal epochs_done, last_line
        runs_before = int(round(epochs_done, 6) // settings.epochs)
        epochs_done += epochs
        done, now = round(epochs_done, 6), time.perf_counter()  # rounded: fractions of an epoch add up inexactly
        runs_done = int(done // settings.epochs)
        if runs_done == runs_before and now - last_line < LINE_EVERY_S:
            return
        left = (now - started) / done * (total - done)
        if runs_done > runs_before:
            where = f"run {runs_done}/{settings.runs} trained"
        else:
            where = f"run {runs_done + 1}/{settings.runs} at epoch {done - runs_done * settings.epochs:.1f}/{settings.epochs}"
        print(f"  {label}: {where} after {now - started:.0f} s, about {left:.0f} s left", file=sys.stderr, flush=True)
        last_line = now

    return on_epoch


def child_run(
    dataset: str,
    method: str,
    ratio: float,
    runs: int,
    seeds: int,
    protocol: str,
    data_root: Path | None,
    device,
    probe_epochs: int | None,
    model: str | None = None,
) -> dict:
    from talk_cli import pipeline
    from talk_cli.evaluate import EvalSettings, training_defaults

    recipe = NO_RECIPE if method.endswith(DEFAULTS) else None  # the defaults alone, as on a user's TAG
    method = method.removesuffix(DEFAULTS)
    settings, _ = pipeline.distill_settings(dataset, recipe, **{"method": method if method != "full" else None, "ratio": ratio})
    prepared = prepared_dataset(dataset, data_root, settings.max_length, device, model)
    evaluation_settings = EvalSettings(runs=runs, **training_defaults(protocol, method == "full") | probe_setting(probe_epochs))
    label = f"{dataset} {method} {ratio} ({protocol})"
    if method == "full":  # the reference, from the evaluate cache when an earlier run made it
        on_epoch = run_progress(label, evaluation_settings)  # silent when read from the cache
        evaluation, _ = pipeline.evaluate(prepared, settings=evaluation_settings, protocol=protocol, on_epoch=on_epoch)
        summary = evaluation.result
        # A cached reference carries the peak of the process that trained it (none in caches older than that record).
        return {"summary": summary, "distill_seconds": 0.0, "n_syn": int(prepared.tag.train_mask.sum()),
                "eval_seconds": summary["train_seconds_mean"] * summary["runs"], "peak_rss_mib": summary.get("peak_rss_mib")}  # fmt: skip
    summaries, distill_seconds, eval_seconds = [], [], []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            bundle, outcome = pipeline.distill(prepared, dataclasses.replace(settings, seed=seed), Path(tmp) / "bundle")
        seed_label = f"{label}, seed {seed}" if seeds > 1 else label
        print(f"  {seed_label}: distilled in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        started, on_epoch = time.perf_counter(), run_progress(seed_label, evaluation_settings)
        evaluation, _ = pipeline.evaluate(prepared, bundle, evaluation_settings, protocol, on_epoch=on_epoch)
        eval_seconds.append(time.perf_counter() - started)
        distill_seconds.append(outcome.seconds)
        summaries.append(evaluation.result)
    return {"summary": pooled(summaries), "distill_seconds": statistics.fmean(distill_seconds), "n_syn": bundle.num_synthetic,
            "eval_seconds": statistics.fmean(eval_seconds), "peak_rss_mib": peak_rss_mib()}  # fmt: skip


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def run_child(*args: str) -> dict:
    # The child's stderr (its progress, and its traceback if it fails) goes straight to ours.
    return run_json([sys.executable, "-m", __spec__.name, "--child", *args], show_stderr=True)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--datasets", nargs="*", default=["cora", "arxiv_2023"], help="gnn-protocol sections (none: joint only)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    parser.add_argument(
        "--methods", nargs="+", default=[*METHODS, f"talk{DEFAULTS}"],
        help=f"methods per ratio; talk{DEFAULTS} is talk with the defaults alone (no recipe)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, nargs="+", default=[10, 5], help="gnn-protocol runs per bundle, per dataset (in order)")
    parser.add_argument("--seeds", type=int, default=1, help="distillation seeds per gnn-protocol row (0, 1, ...)")
    parser.add_argument("--joint", nargs="*", default=["cora:0.01", "arxiv_2023:0.01"], help="dataset:ratio pairs for the joint protocol")
    parser.add_argument("--joint-runs", type=int, default=3)
    parser.add_argument("--joint-probe-epochs", type=int, help="the joint protocol's --probe-epochs (default: the protocol's)")
    parser.add_argument("--section", help="the gnn-protocol section's name, with one dataset (default: results-DATASET, then the ratios when not the defaults)")
    parser.add_argument("--joint-section", help="the joint section's name (default: results-joint, then the pairs, probe and device when not the defaults)")
    parser.add_argument("--write", type=Path, help="update this document's sections (one per dataset, one for joint)")
    add_device_option(parser)
    parser.add_argument("--model", help="the LM, a folder or hub id (default: talk's, all-MiniLM-L6-v2); its sections are named results-<its name>-<dataset>")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolved_device(parser, args.device)
    if args.section and len(args.datasets) != 1:
        parser.error("--section names one dataset's section: give one dataset")
    if args.child:
        from talk_cli.console import quiet_transformers

        quiet_transformers()  # its stderr is ours: progress lines only, as `talk` prints
        dataset, method, ratio, runs, seeds, protocol = args.child
        probe = args.joint_probe_epochs if protocol == "joint" else None
        print(json.dumps(child_run(dataset, method, float(ratio), int(runs), int(seeds), protocol, args.data_root, device, probe, args.model)))
        return
    # Children get the same data root, device and probe; sections measured on a GPU sit beside the CPU ones.
    root = [*(["--data-root", str(args.data_root)] if args.data_root else []), *(["--model", args.model] if args.model else []), "--device", args.device]
    lm = f"{Path(args.model).name}-" if args.model else ""  # sections of another LM than the default are named after it
    if args.joint_probe_epochs is not None:
        root += ["--joint-probe-epochs", str(args.joint_probe_epochs)]
    suffix = "-cuda" if device.type == "cuda" else ""
    command = "python -m benchmarks.results " + " ".join(sys.argv[1:])
    header = [*run_header(command, device=device), ""]
    sections: dict[str, list[str]] = {}
    references = {}
    default_ratios = parser.get_default("ratios")
    per_seed = args.seeds > 1  # one more column: each distillation seed's mean test accuracy
    for index, dataset in enumerate(args.datasets):
        runs = args.runs[min(index, len(args.runs) - 1)]
        full = run_child(dataset, "full", "1.0", str(runs), "1", "gnn", *root)
        reference = references[dataset] = full["summary"]["test_accuracy_mean"]
        name = args.section or f"results-{lm}{dataset}" + ("" if args.ratios == default_ratios else "-" + "-".join(map(str, args.ratios))) + suffix
        count = f"{args.seeds} distillation seeds x {runs} runs" if per_seed else f"{runs} runs"
        with_lm = f" with {Path(args.model).name}" if args.model else ""
        out = sections[name] = [f"## {dataset}{with_lm} ({count} per row, ratios {', '.join(map(str, args.ratios))})", "", *header]
        seed_column = ["per-seed test acc %"] if per_seed else []
        columns = ["method", "ratio", "nodes", "test acc %", "macro-F1 %", "% of full", *seed_column, "distil s", "eval s", "peak RSS MiB"]
        out += ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
        seed_cell = ["-"] if per_seed else []
        out.append(
            "| " + " | ".join(["full", "1.0", str(full["n_syn"]), scores(full["summary"]), "100.0", *seed_cell, "-",
                               f"{full['eval_seconds']:.0f}", mib(full["peak_rss_mib"])]) + " |"
        )  # fmt: skip
        print(out[-1], file=sys.stderr, flush=True)
        write_sections(args.write, sections, building=name)
        for ratio in args.ratios:
            for method in args.methods:
                r = run_child(dataset, method, str(ratio), str(runs), str(args.seeds), "gnn", *root)
                seed_cell = [" / ".join(pct(a) for a in r["summary"]["per_seed_test_accuracy"])] if per_seed else []
                out.append(
                    "| " + " | ".join([method, str(ratio), str(r["n_syn"]), scores(r["summary"]),
                                       f"{100 * r['summary']['test_accuracy_mean'] / reference:.1f}", *seed_cell,
                                       f"{r['distill_seconds']:.1f}", f"{r['eval_seconds']:.0f}", mib(r["peak_rss_mib"])]) + " |"
                )  # fmt: skip
                print(out[-1], file=sys.stderr, flush=True)
                write_sections(args.write, sections, building=name)
    if args.joint:
        name = f"results-{lm}joint" + ("" if args.joint == parser.get_default("joint") else "-" + "-".join(p.replace(":", "-") for p in args.joint))
        name += ("" if args.joint_probe_epochs is None else f"-probe{args.joint_probe_epochs}") + suffix
        name = args.joint_section or name
        out = sections[name] = [f"## Joint protocol ({args.joint_runs} runs per row)", "", *header, joint_note(args.joint_probe_epochs), ""]
        out += [
            "| dataset | method | ratio | nodes | test acc % | macro-F1 % | % of joint full | % of frozen full | best epochs | val % probe / fine-tuned | distil s | eval s | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for dataset in dict.fromkeys(pair.split(":")[0] for pair in args.joint):
            frozen = references.get(dataset) or run_child(dataset, "full", "1.0", "1", "1", "gnn", *root)["summary"]["test_accuracy_mean"]
            full = run_child(dataset, "full", "1.0", "1", "1", "joint", *root)
            joint_reference = full["summary"]["test_accuracy_mean"]
            out.append(
                f"| {dataset} | full (joint) | 1.0 | {full['n_syn']} | {scores(full['summary'])} | 100.0 "
                f"| {100 * joint_reference / frozen:.1f} | {best_epochs(full['summary'])} | {validations(full['summary'])} | - | {full['eval_seconds']:.0f} | {mib(full['peak_rss_mib'])} |"
            )
            print(out[-1], file=sys.stderr, flush=True)
            write_sections(args.write, sections, building=name)
            for ratio in [pair.split(":")[1] for pair in args.joint if pair.split(":")[0] == dataset]:
                # The joint protocol trains the LM on the bundle's texts; kernel-features bundles have none.
                for method in [m for m in args.methods if REGISTERED[m.removesuffix(DEFAULTS)].reads_texts]:
                    r = run_child(dataset, method, ratio, str(args.joint_runs), "1", "joint", *root)
                    accuracy = r["summary"]["test_accuracy_mean"]
                    out.append(
                        f"| {dataset} | {method} | {ratio} | {r['n_syn']} | {scores(r['summary'])} "
                        f"| {100 * accuracy / joint_reference:.1f} | {100 * accuracy / frozen:.1f} | {best_epochs(r['summary'])} | {validations(r['summary'])} | {r['distill_seconds']:.1f} "
                        f"| {r['eval_seconds']:.0f} | {mib(r['peak_rss_mib'])} |"
                    )
                    print(out[-1], file=sys.stderr, flush=True)
                    write_sections(args.write, sections, building=name)
    write_sections(args.write, sections)
    for lines in sections.values():
        print("\n".join(lines) + "\n")


def write_sections(doc: Path | None, sections: dict[str, list[str]], building: str | None = None) -> None:
    """Write every section built so far. Called after each row too, so that a run of hours that
    is stopped keeps what it measured; the section still `building` says it is partial."""
    if doc is None:
        return
    for name, lines in sections.items():
        write_section(doc, name, "\n".join([*lines, "", PARTIAL] if name == building else lines))


if __name__ == "__main__":
    main()
