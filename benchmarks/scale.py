"""How distillation cost grows with the graph, in 1 and 2 processes (torchrun, gloo).

    python -m benchmarks.scale --nodes 10000 100000 1000000 --procs 1 2 --write docs/performance.md

The graphs are demo-like TAGs scaled up (`scale_tag`): short texts of 8 topic and jargon words,
5 classes, average degree about 10, 60% of edges drawn inside a class, a random 60/20/20 split.

Distillation reads **stand-in features**, not MiniLM's: class centre + Gaussian noise, [n, 384]
float32 (MiniLM would need about 11 hours to encode a million texts on this CPU). Everything else
is a real run with the default settings at ratio 0.001: the real MiniLM reads the synthetic token
sequences, the kernel's real side is built from the graph, and a bundle is written. So the times
are those of `talk distill` from a warm features cache. The encode column runs MiniLM on a sample
of the graph's texts (1024, 64 tokens at most).

Each (n, processes) pair runs in fresh child processes (torchrun for 2), so peak RSS is per
process; the 1- and 2-process bundles are compared (same selected step, largest difference).

    python -m benchmarks.scale --datasets cora arxiv_2023 --write docs/performance.md

runs `talk distill --ratio 0.01` (the shipped recipe) on real datasets in 1 and 2 processes
instead, and compares the bundles the same way. Warm the features cache first (`talk encode`
with the recipe's --max-length), or the first run's time includes encoding.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import add_set_option, run_header, write_section
from talk_cli.memory import peak_rss_mib

TORCHRUN_NOTE = "; 2 processes run under torchrun with 1 thread each"
HIDDEN = 384  # MiniLM's width
RATIO = 0.001
SAMPLE_TEXTS = 1024


def scale_tag(num_nodes: int, degree: int = 10, homophily: float = 0.6, seed: int = 0):
    """A demo-like TAG of `num_nodes` nodes, generated with torch so a million nodes take seconds."""
    from talk_cli.data import JARGON, TOPICS, SplitSpec, build_tag

    g = torch.Generator().manual_seed(seed)
    topics = list(TOPICS.values())
    vocabulary = [word for words in topics for word in words] + JARGON
    labels = torch.randint(len(topics), (num_nodes,), generator=g)
    own_word = torch.randint(len(topics[0]), (num_nodes, 8), generator=g) + labels[:, None] * len(topics[0])
    any_word = torch.randint(len(vocabulary), (num_nodes, 8), generator=g)
    words = torch.where(torch.rand(num_nodes, 8, generator=g) < 0.6, own_word, any_word).tolist()
    texts = [" ".join(vocabulary[w] for w in row) for row in words]

    # Each node draws degree/2 partners (the graph is symmetrised): mostly from its own class.
    src = torch.arange(num_nodes).repeat_interleave(degree // 2)
    by_class = torch.argsort(labels)
    counts = torch.bincount(labels, minlength=len(topics))
    offsets = torch.cumsum(counts, 0) - counts
    same = by_class[offsets[labels[src]] + (torch.rand(len(src), generator=g) * counts[labels[src]]).long()]
    anyone = torch.randint(num_nodes, (len(src),), generator=g)
    dst = torch.where(torch.rand(len(src), generator=g) < homophily, same, anyone)
    return build_tag(f"scale-{num_nodes}", texts, labels, list(TOPICS), src, dst, SplitSpec())


def stand_in_features(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Class centre + Gaussian noise (4x the centres' norm), [n, HIDDEN] float32, built in blocks (no float64 copy)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(int(labels.max()) + 1, HIDDEN, generator=g) * 0.05
    features = torch.empty(len(labels), HIDDEN)
    for start in range(0, len(labels), 100_000):
        block = labels[start : start + 100_000]
        features[start : start + len(block)] = centres[block] + torch.randn(len(block), HIDDEN, generator=g) * (4 / math.sqrt(HIDDEN))
    return features


def worker(num_nodes: int, out_dir: Path, changes: dict) -> dict:
    """One process's share of one (n, processes) run: encode the sample, then distil."""
    from talk_cli import distributed
    from talk_cli.data import SplitSpec, build_tag
    from talk_cli.distill import TOKEN_PHASE, DistillSettings, run_distillation
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    distributed.start(torch.device("cpu"))
    started = time.perf_counter()
    tag = scale_tag(num_nodes)
    features = stand_in_features(tag.labels)
    generated = time.perf_counter() - started
    lm = load_language_model()

    sample = build_tag("scale-sample", tag.texts[:SAMPLE_TEXTS], tag.labels[:SAMPLE_TEXTS], tag.label_names,
                       torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), SplitSpec())  # fmt: skip
    encoded = encode_tag(sample, lm, EncodeSettings(max_length=64, chunk_size=128), out=out_dir / "sample.safetensors", force=True)

    stamps: list[float] = []
    settings = DistillSettings(ratio=RATIO, **changes)
    started = time.perf_counter()
    bundle, outcome = run_distillation(
        tag,
        lm,
        features,
        settings,
        torch.device("cpu"),
        out_dir / "bundle",
        force=True,
        on_step=lambda report: report.phase == TOKEN_PHASE and stamps.append(time.perf_counter()),
    )
    total = time.perf_counter() - started
    steps = torch.tensor(stamps).diff()
    return {
        "nodes": num_nodes,
        "edges": int(tag.edge_index.shape[1]) // 2,
        "synthetic": bundle.num_synthetic,
        "generate_s": generated,
        "encode_texts_per_s": SAMPLE_TEXTS / encoded.seconds,
        "distill_s": total,
        "setup_s": total - outcome.seconds,  # adjacency, propagation, seeds (and the bundle write)
        "loop_s": outcome.seconds,
        "step_median_s": float(steps.median()) if len(steps) else float("nan"),
        "best_step": outcome.best_step,
        "val_accuracy": outcome.best_val_accuracy,
        "stopped_at": outcome.stopped_at,
        "phase_seconds": outcome.phase_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def launch(procs: int, *program: str) -> None:
    """Run `python PROGRAM...` in one fresh process, or in `procs` under torchrun."""
    launcher = [] if procs == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    subprocess.run([sys.executable, *launcher, *program], check=True)


def run(num_nodes: int, procs: int, out_dir: Path, changes: dict) -> list[dict]:
    """Run the workers for one (n, processes) pair in fresh processes; one report per rank."""
    sets = [f"{key}={json.dumps(value)}" for key, value in changes.items()]  # JSON scalars read back as YAML
    launch(procs, "-m", __spec__.name, "--worker", str(num_nodes), "--out", str(out_dir), *(["--set", *sets] if sets else []))
    return [json.loads(line) for line in (out_dir / "reports.jsonl").read_text().splitlines()]


def compare(one: Path, two: Path) -> str:
    from talk_cli.bundle import load_bundle

    a, b = load_bundle(one), load_bundle(two)
    same_step = a.distillation.settings["run"]["best_step"] == b.distillation.settings["run"]["best_step"]
    difference = float((a.token_embeddings - b.token_embeddings).abs().max())
    curves = list(zip(a.distillation.curve, b.distillation.curve))
    loss = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in curves)
    val = max(abs(x["val_accuracy"] - y["val_accuracy"]) for x, y in curves)
    return (
        f"{'same' if same_step else 'DIFFERENT'} step; along the curve: losses within {loss:.1e} relative, "
        f"validation accuracy within {val:.4f}; largest ΔE {difference:.1e}"
    )


def distill_dataset(dataset: str, procs: int, out: Path) -> float:
    """Seconds of `talk distill --dataset D --ratio 0.01` in `procs` processes (features cached)."""
    started = time.perf_counter()
    launch(procs, "-m", "talk_cli", "distill", "--dataset", dataset, "--ratio", "0.01", "--out", str(out), "--force", "--quiet")
    return time.perf_counter() - started


def dataset_rows(datasets: list[str], command: str) -> str:
    lines = [
        "| dataset | 1 process s | 2 processes s | 2 vs 1 process bundle |",
        "|---|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            one, two = Path(tmp) / f"{dataset}-1", Path(tmp) / f"{dataset}-2"
            seconds = [distill_dataset(dataset, 1, one), distill_dataset(dataset, 2, two)]
            lines.append(f"| {dataset} | {seconds[0]:.1f} | {seconds[1]:.1f} | {compare(one, two)} |")
            print(lines[-1], file=sys.stderr)
    return "\n".join(
        [
            *run_header(command, TORCHRUN_NOTE),
            "Wall seconds of the whole `talk distill --ratio 0.01` command (shipped recipe, features cached; process start and model loading included).",
            "",
            *lines,
        ]
    )


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = torch.tensor(xs).log(), torch.tensor(ys).log()
    return float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for procs in sorted({r["procs"] for r in rows}):
        mine = [r for r in rows if r["procs"] == procs]
        n = [r["nodes"] for r in mine]
        left.loglog(n, [r["distill_s"] for r in mine], "o-", label=f"{procs} process(es)")
        right.loglog(n, [r["peak_rss_mib"] / 1024 for r in mine], "o-", label=f"{procs} process(es)")
    left.set(xlabel="nodes", ylabel="distil seconds (whole run)", title="time")
    right.set(xlabel="nodes", ylabel="peak RSS per process (GiB)", title="memory")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--datasets", nargs="+", help="real datasets to distil in 1 and 2 processes instead")
    parser.add_argument("--write", type=Path, help="update the scale section of this markdown file (and its plot)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # child mode: one rank of one run
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    add_set_option(parser)
    args = parser.parse_args()
    changes = dict(args.set)
    from talk_cli.distill import DistillSettings
    from talk_cli.errors import SettingsError

    try:
        planned = DistillSettings(ratio=RATIO, **changes)
    except (SettingsError, TypeError) as error:
        parser.error(f"--set: {error}")
    if args.worker:
        from talk_cli import distributed

        report = worker(args.worker, args.out, changes)
        with open(args.out / "reports.jsonl", "a") as file:  # one short line per rank: appends do not interleave
            file.write(json.dumps({**report, "rank": distributed.rank()}) + "\n")
        return
    command = "python -m benchmarks.scale " + " ".join(sys.argv[1:])
    if args.datasets:
        if changes:
            parser.error("--set changes the generated graphs' settings; --datasets runs each dataset's recipe")
        markdown = dataset_rows(args.datasets, command)
        print(markdown)
        if args.write:
            write_section(args.write, "scale-datasets", markdown)
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nodes:
            for procs in args.procs:
                out = Path(tmp) / f"{n}-{procs}"
                out.mkdir()
                reports = run(n, procs, out, changes)
                first = min(reports, key=lambda r: r["rank"])
                row = {**first, "procs": procs, "peak_rss_mib": max(r["peak_rss_mib"] for r in reports)}
                row["same"] = compare(Path(tmp) / f"{n}-1" / "bundle", out / "bundle") if procs > 1 and 1 in args.procs else "-"
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)

    lines = [
        *run_header(command, TORCHRUN_NOTE),
        f"Settings: the defaults{' with ' + ', '.join(f'{k}={v}' for k, v in changes.items()) if changes else ''} at ratio {RATIO} "
        f"(selection: {planned.select}, warm start: {planned.invert_steps} steps); stand-in features (see the script's docstring); the real MiniLM in the loop.",
        "",
        "| nodes | edges | processes | synthetic | encode texts/s | distil s (whole run) | setup s | s per outer step (median) "
        "| peak RSS per process MiB | best step | val acc | 2 vs 1 process bundle |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nodes']:,} | {r['edges']:,} | {r['procs']} | {r['synthetic']} | {r['encode_texts_per_s']:.1f} | {r['distill_s']:.1f} "
            f"| {r['setup_s']:.1f} | {r['step_median_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['best_step']} | {r['val_accuracy']:.3f} | {r['same']} |"
        )
    lines.append("")
    for procs in args.procs:
        mine = [r for r in rows if r["procs"] == procs]
        if len(mine) >= 2:
            n = [r["nodes"] for r in mine]
            lines.append(
                f"- {procs} process(es): fitted log-log slope of time {slope(n, [r['distill_s'] for r in mine]):.2f}, "
                f"of memory {slope(n, [r['peak_rss_mib'] for r in mine]):.2f}; between the two largest graphs: time "
                f"{slope(n[-2:], [r['distill_s'] for r in mine[-2:]]):.2f}, memory {slope(n[-2:], [r['peak_rss_mib'] for r in mine[-2:]]):.2f}"
            )
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        plot(rows, args.write.with_name("scale.png"))
        write_section(args.write, "scale", markdown + "\n\n![distil time and peak memory against nodes](scale.png)")


if __name__ == "__main__":
    main()
