"""Benchmark `talk distill`: time and peak memory per dataset and ratio, the kernel step alone,
and the memory of batch-wise gradient injection against full back-propagation.

    python -m benchmarks.distill --write docs/performance.md
    python -m benchmarks.distill --datasets cora --kernel-sizes --injection-sizes --write docs/performance.md  # one part
    python -m benchmarks.distill --datasets --injection-sizes --write docs/performance.md  # the kernel table alone
    python -m benchmarks.distill --device cuda --kernel-sizes --injection-sizes --write docs/performance.md  # on a GPU

Each part (a dataset's table, the kernel table, the injection table) is its own marked section
of the document, so a part can be measured again without the others.

Every measurement runs in a fresh child process so that its peak RSS is its own. Distillation
uses each dataset's shipped recipe (talk_cli/recipes/<dataset>.yaml). "Encode" is a fresh encode of the
dataset with the recipe's max length, measured once per dataset. `--device cuda` runs the dataset
tables on the GPU (sections named distill-<dataset>-cuda, with the GPU's peak memory); the kernel
and injection tables measure the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import add_device_option, median_seconds, prepared_dataset, resolved_device, run_header, run_json, write_section
from talk_cli.memory import peak_rss_mib


def child(args: list[str]) -> dict:
    return run_json([sys.executable, "-m", __spec__.name, "--child", *args])[0]


def recipe_settings(dataset: str, **change):
    from talk_cli import pipeline

    return pipeline.distill_settings(dataset, dataset, **change)[0]


def peak_gpu_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def run_encode(dataset: str, data_root: Path | None, device: torch.device) -> dict:
    from talk_cli.data import load_tag
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    tag, lm = load_tag(dataset, data_root), load_language_model()
    max_length = recipe_settings(dataset).max_length
    with tempfile.TemporaryDirectory() as tmp:
        result = encode_tag(tag, lm, EncodeSettings(max_length=max_length), device, out=Path(tmp) / "f.safetensors", force=True)
    return {"seconds": result.seconds, "peak_rss_mib": peak_rss_mib(), "peak_gpu_mib": peak_gpu_mib(device)}


def run_distill(dataset: str, data_root: Path | None, ratio: float, device: torch.device) -> dict:
    from talk_cli.distill import Distiller, distill

    settings = recipe_settings(dataset, ratio=ratio)
    prepared = prepared_dataset(dataset, data_root, settings.max_length, device)
    started = time.perf_counter()  # features cached: this times the distillation alone
    distiller = Distiller.start(prepared.tag, prepared.lm, prepared.features, settings, device)
    outcome = distill(distiller)  # its tensors come back to the CPU: the GPU's work is done
    return {
        "seconds": time.perf_counter() - started,
        "n_syn": int(outcome.labels.shape[0]),
        "steps": settings.steps,
        "val": outcome.best_val_accuracy,
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": peak_gpu_mib(device),
    }


def run_kernel_step(data_root: Path | None, n_syn: int, variant: str) -> dict:
    """The library's KRR loss and its gradient alone (no LM), on Cora's MiniLM features: a
    kernel-features loop of n_syn nodes with the default ridge, every training node in the batch.
    The set-up is the real side's (the kernel's view of the real graph, built once per run)."""
    from talk_cli.distill import Distiller, DistillSettings, RealSide
    from talk_cli.kernel import KERNEL_DTYPE

    prepared = prepared_dataset("cora", data_root, 128)
    settings = DistillSettings(method="kernel-features", size=n_syn, ratio=None, kernel=variant)
    started = time.perf_counter()
    RealSide(prepared.tag, prepared.features, settings, prepared.device)
    setup = time.perf_counter() - started
    distiller = Distiller.start(prepared.tag, prepared.lm, prepared.features, settings, prepared.device)
    features = distiller.features().to(KERNEL_DTYPE)

    def step() -> None:
        distiller.kernel_loss(features.detach().requires_grad_(), distiller.real.train_nodes).backward()

    return {"setup_seconds": setup, "step_seconds": median_seconds(step, 5), "peak_rss_mib": peak_rss_mib()}


def run_injection_memory(data_root: Path | None, n_syn: int, chunk: int) -> dict:
    """Peak RSS of one outer step on Cora with the real MiniLM: injection in chunks of `chunk`
    synthetic nodes, or full back-propagation through the LM when chunk >= n_syn."""
    from talk_cli.data import load_tag
    from talk_cli.distill import Distiller, DistillSettings
    from talk_cli.encode import EncodeSettings, encode_embeddings, encode_tag, load_language_model

    tag, lm = load_tag("cora", data_root), load_language_model()
    features = encode_tag(tag, lm, EncodeSettings(max_length=128)).features
    settings = DistillSettings(size=n_syn, ratio=None, seq_len=32, lm_chunk=chunk, steps=1)
    distiller = Distiller.start(tag, lm, features, settings, torch.device("cpu"))
    before = peak_rss_mib()
    started = time.perf_counter()
    if chunk >= n_syn:
        tokens = distiller.synthetic.representation
        full = encode_embeddings(lm, tokens.embeddings, tokens.mask).double()
        distiller.kernel_loss(full, distiller.real.train_nodes).backward()
    else:
        distiller.outer_step()
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": peak_rss_mib(), "before_step_mib": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--datasets", nargs="*", default=["cora", "arxiv_2023"], help="dataset tables (none: only the kernel and injection tables)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    parser.add_argument("--kernel-sizes", type=int, nargs="*", default=[16, 64, 256, 1024])
    parser.add_argument("--injection-sizes", type=int, nargs="*", default=[16, 64, 128])
    parser.add_argument("--write", type=Path)
    add_device_option(parser)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolved_device(parser, args.device)
    root = [*(["--data-root", str(args.data_root)] if args.data_root else []), "--device", args.device]
    if args.child:
        kind, *rest = args.child
        data_root = args.data_root
        result = {
            "encode": lambda: run_encode(rest[0], data_root, device),
            "distill": lambda: run_distill(rest[0], data_root, float(rest[1]), device),
            "kernel": lambda: run_kernel_step(data_root, int(rest[0]), rest[1]),
            "inject": lambda: run_injection_memory(data_root, int(rest[0]), int(rest[1])),
        }[kind]()
        print(json.dumps(result))
        return

    command = f"python -m benchmarks.distill {' '.join(sys.argv[1:])}"
    header, cpu_header = [*run_header(command, device=device), ""], [*run_header(command), ""]
    on_gpu = device.type == "cuda"
    sections: dict[str, list[str]] = {}
    for dataset in args.datasets:
        name, where = (f"distill-{dataset}-cuda", " on the GPU") if on_gpu else (f"distill-{dataset}", "")
        lines = sections[name] = [f"### Distilling {dataset} with its shipped recipe{where}", "", *header]
        gpu_column = [" peak GPU MiB |", "---:|"] if on_gpu else ["", ""]
        lines += ["| ratio | n_syn | steps | distil s (features cached) | encode s | distil + encode s | peak RSS MiB |" + gpu_column[0] + " val KRR acc |"]
        lines += ["|---:|---:|---:|---:|---:|---:|---:|" + gpu_column[1] + "---:|"]
        encode = child(["encode", dataset, *root])
        for ratio in args.ratios:
            r = child(["distill", dataset, str(ratio), *root])
            lines.append(
                f"| {ratio} | {r['n_syn']} | {r['steps']} | {r['seconds']:.1f} | {encode['seconds']:.1f} "
                f"| {r['seconds'] + encode['seconds']:.1f} | {max(r['peak_rss_mib'], encode['peak_rss_mib']):.0f} |"
                + (f" {max(r['peak_gpu_mib'], encode['peak_gpu_mib']):.0f} |" if on_gpu else "")
                + f" {r['val']:.4f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    if args.kernel_sizes:
        lines = sections["distill-kernel"] = [
            "### The kernel step alone (Cora, K = 2, L = 1, the default ridge, all 1,625 training nodes, KRR loss forward + backward)",
            "",
            *cpu_header,
        ]
        lines += ["| n_syn | variant | real-side set-up s | step s (median of 5) | peak RSS MiB |", "|---:|---|---:|---:|---:|"]
        for n_syn in args.kernel_sizes:
            for variant in ("propagate-first", "interleaved"):
                r = child(["kernel", str(n_syn), variant, *root])
                lines.append(f"| {n_syn} | {variant} | {r['setup_seconds']:.3f} | {r['step_seconds']:.4f} | {r['peak_rss_mib']:.0f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    if args.injection_sizes:
        lines = sections["distill-injection"] = [
            "### Gradient injection keeps memory flat (Cora, MiniLM, 32 tokens per synthetic text, one step)",
            "",
            *cpu_header,
        ]
        lines += ["| n_syn | backward | seconds | peak RSS MiB | RSS before the step MiB |", "|---:|---|---:|---:|---:|"]
        for n_syn in args.injection_sizes:
            for chunk, label in ((8, "injection, chunks of 8"), (n_syn, "full back-propagation")):
                r = child(["inject", str(n_syn), str(chunk), *root])
                lines.append(f"| {n_syn} | {label} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['before_step_mib']:.0f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    for name, lines in sections.items():
        print("\n".join(lines) + "\n")
        if args.write:
            write_section(args.write, name, "\n".join(lines))


if __name__ == "__main__":
    main()
