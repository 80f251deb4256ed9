"""Where the time of `talk distill` goes, and what TaLK costs beside its own baseline.

    python -m benchmarks.cost --write docs/performance.md                       # demo, cora, arxiv_2023 on the CPU
    python -m benchmarks.cost --datasets cora --device cuda --write docs/performance.md
    python -m benchmarks.cost --speed-settings --seeds 0 1 2 --write docs/logs/method-evidence.md # the speed settings on validation
    python -m benchmarks.cost --datasets cora --busy 1 --repeats 2 --write docs/performance.md  # quiet vs beside a busy process

Cost table: each variant is a whole `talk distill --ratio 0.01 --json` process (features cached by
a `talk encode` first), the variants alternating, `--repeats` rounds; the table gives the median
process wall time, the distillation time (`distill_seconds`), the ratio of TaLK's process time
to kernel-features', and seconds per phase (the run's own clock: `phase_seconds`).

Speed settings: for each dataset and distillation seed, one run that spends every step
(`--patience 0 --invert-cosine 0`) and one with the defaults; the table gives each one's GCN
validation accuracy (what `--select gcn` scored) and distillation time. Decisions are made on
these validation numbers; no test label is read.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from benchmarks.common import run_header, run_json, write_section

VARIANTS = {  # name -> extra `talk distill` options
    "talk (recipe)": [],
    "talk, text start (recipe, --init texts)": ["--init", "texts"],
    "talk (defaults: --recipe none)": ["--recipe", "none"],
    "kernel-features (recipe)": ["--method", "kernel-features"],
}
SPEND_EVERY_STEP = ["--patience", "0", "--invert-cosine", "0"]
# Phases grouped into the table's columns (the clock's names start with their loop's stage).
COLUMNS = {
    "free-feature loop": lambda phase: phase.startswith("free features"),
    "inversion": lambda phase: phase == "inversion",
    "LM passes (token loop)": lambda phase: phase in ("tokens: synthetic features", "tokens: gradient injection"),
    "KRR forward/backward": lambda phase: phase == "tokens: KRR loss and gradient",
    "GCN selection": lambda phase: phase in ("inversion: gcn selection", "tokens: gcn selection"),  # the inversion's checks, then the token loop's
    "checkpoints + write": lambda phase: phase in ("checkpoints", "bundle write"),
}


def talk(*args: str, threads: int, device: str) -> tuple[float, dict]:
    """Run `talk ...` as its own process; its wall seconds and its JSON output."""
    result, seconds = run_json([sys.executable, "-m", "talk_cli", *args, "--threads", str(threads), "--device", device, "--quiet", "--json"])
    return seconds, result


@contextmanager
def busy_processes(count: int):
    """`count` processes that each keep one core busy (a Python loop), for as long as the block runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def cost_table(
    dataset: str, data_root: str, repeats: int, threads: int, device: str, out: Path, busy: int = 0, model: str | None = None, variants: dict = VARIANTS
) -> list[str]:
    """The cost table of `variants`, with the LM `model` (default: talk's); with `busy`, each variant
    also runs beside that many busy processes, the quiet and busy runs alternating, and each row is
    given under both loads."""
    common = ["--dataset", dataset, "--data-root", data_root, *(["--model", model] if model else [])]
    for variant in variants.values():  # warm the features cache at each variant's max length
        length = talk("distill", *common, *variant, "--print-settings", threads=threads, device=device)[1]["max_length"]
        talk("encode", *common, "--max-length", str(length), threads=threads, device=device)
    loads = [0, busy] if busy else [0]
    runs: dict[tuple[str, int], list[tuple[float, dict]]] = {(name, load): [] for name in variants for load in loads}
    for _ in range(repeats):
        for name, variant in variants.items():
            for load in loads:
                with busy_processes(load):
                    runs[name, load].append(
                        talk("distill", *common, *variant, "--ratio", "0.01", "--out", str(out / "b"), "--force", threads=threads, device=device)
                    )
    process = {key: statistics.median(s for s, _ in results) for key, results in runs.items()}
    rows = []
    for (name, load), results in runs.items():
        _, last = results[-1]
        phases = [sum(v for k, v in last["phase_seconds"].items() if wanted(k)) for wanted in COLUMNS.values()]
        distil = statistics.median(r["distill_seconds"] for _, r in results)
        stopped = last["stopped_at"] if last["stopped_at"] is not None else "-"
        beside = f" | {'quiet' if load == 0 else f'beside {load} busy'} | {process[name, load] / process[name, 0]:.2f}×" if busy else ""
        rows.append(
            f"| {name}{beside} | {process[name, load]:.1f} | {distil:.1f} | {process[name, load] / process['kernel-features (recipe)', load]:.2f}× | "
            + " | ".join(f"{p:.1f}" for p in phases)
            + f" | {stopped} | {last['val_accuracy']:.4f} |"
        )
    load_columns = (" | load | process / quiet", "---|---:|") if busy else ("", "")
    return [
        f"| variant{load_columns[0]} | process s | distil s | process / kernel-features | {' | '.join(COLUMNS)} | stopped at | GCN val acc |",
        "|---|" + load_columns[1] + "---:|---:|---:|" + "---:|" * len(COLUMNS) + "---:|---:|",
        *rows,
    ]


def speed_settings(dataset: str, data_root: str, seeds: list[int], threads: int, device: str, out: Path) -> list[str]:
    rows, gains = [], []
    for seed in seeds:
        common = ["--dataset", dataset, "--data-root", data_root, "--ratio", "0.01", "--seed", str(seed), "--out", str(out / "b"), "--force"]
        _, every = talk("distill", *common, *SPEND_EVERY_STEP, threads=threads, device=device)
        curve = yaml.safe_load((out / "b" / "manifest.yaml").read_text())["distillation"]["curve"]
        _, default = talk("distill", *common, threads=threads, device=device)
        warm = default["settings"]["invert_cosine"], default["settings"]["patience"]
        gains.append(default["val_accuracy"] - every["val_accuracy"])
        rows.append(
            f"| {seed} | {every['val_accuracy']:.4f} (step {every['best_step']}) | {every['distill_seconds']:.1f} | "
            f"{default['val_accuracy']:.4f} (step {default['best_step']}, stopped at {default['stopped_at']}) | {default['distill_seconds']:.1f} | "
            + ", ".join(f"{point['val_accuracy']:.3f}" for point in curve)
            + " |"
        )
    return [
        f"Defaults: `--invert-cosine {warm[0]} --patience {warm[1]}`; every step: `{' '.join(SPEND_EVERY_STEP)}`. "
        f"Mean change in GCN validation accuracy: {100 * statistics.fmean(gains):+.2f} points.",
        "",
        "| seed | every step: GCN val (best step) | distil s | defaults: GCN val | distil s | every step's validation curve (steps 0, 10, ...) |",
        "|---:|---:|---:|---:|---:|---|",
        *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["demo", "cora", "arxiv_2023"])
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the alternating variants (the median is shown)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--busy", type=int, default=0, help="also run each variant beside this many busy processes (one core each), alternating with the quiet runs"
    )
    parser.add_argument("--speed-settings", action="store_true", help="the speed settings on validation instead of the cost table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", type=Path, help="write each dataset's table into this document (a marked section)")
    parser.add_argument("--model", help="the LM, a folder or hub id (default: talk's); the section is named after it")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="the cost table's rows (kernel-features always)")
    args = parser.parse_args()
    command = "python -m benchmarks.cost " + " ".join(sys.argv[1:])
    suffix = "-cuda" if args.device == "cuda" else ""
    import torch

    header = run_header(command, f" ({args.threads} threads per process)", torch.device(args.device))
    for dataset in args.datasets:
        with tempfile.TemporaryDirectory() as tmp:
            if args.speed_settings:
                table, title, name = speed_settings(dataset, args.data_root, args.seeds, args.threads, args.device, Path(tmp)), "speed settings", "speed"
            else:
                chosen = {name: VARIANTS[name] for name in VARIANTS if name in args.variants or name == "kernel-features (recipe)"}
                table = cost_table(dataset, args.data_root, args.repeats, args.threads, args.device, Path(tmp), args.busy, args.model, chosen)
                title, name = ("cost", "cost") if not args.busy else (f"cost beside {args.busy} busy process(es)", f"busy{args.busy}")
        lm = Path(args.model).name if args.model else ""
        body = "\n".join([f"#### {dataset}: {title}{' with ' + lm if lm else ''}{' on ' + args.device if suffix else ''}", "", *header, "", *table])
        print(body, flush=True)
        if args.write:
            write_section(args.write, f"{name}-{dataset}{'-' + lm if lm else ''}{suffix}", body)


if __name__ == "__main__":
    main()
