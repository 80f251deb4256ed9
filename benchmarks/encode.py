"""Benchmark `talk encode` with the real MiniLM on Cora.

    python -m benchmarks.encode [--data-root ../shared/datasets] [--lengths 128 256] [--write docs/performance.md]
    python -m benchmarks.encode --device cuda --dtype float32 bfloat16 --batch-size 32 256 --write docs/performance.md

Each max length runs in a fresh child process so that its peak memory (max RSS) is its own.
Reported: texts/s, tokens/s (real tokens, no padding), peak RSS, and the achieved FLOP/s of
the encoder's matmuls as a fraction of this machine's GEMM peak at the same dtype, measured in
the same run (on a GPU, float32 runs as TF32 only if torch allows it; it does not by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import matmul_peak_gflops, run_header, run_json, write_section
from talk_cli.memory import peak_rss_mib

COMMAND = "python -m benchmarks.encode --write docs/performance.md"


def encoder_flops(lengths: list[int], config) -> float:
    """Multiply-adds x2 of a BERT encoder forward over texts of the given token lengths."""
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * h * h + 2 * h * inner)  # Q, K, V, output projections and the feed-forward block
    return float(sum(layers * t * (per_token + 4 * t * h) for t in lengths))  # + attention scores and mixing


def run_one(data_root: Path, max_length: int, batch_size: int, device: str = "cpu", dtype: str = "float32") -> dict:
    from talk_cli.data import load_tag
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    tag = load_tag("cora", data_root)
    lm = load_language_model()
    with tempfile.TemporaryDirectory() as tmp:
        result = encode_tag(
            tag, lm, EncodeSettings(max_length=max_length, batch_size=batch_size, dtype=dtype), torch.device(device), out=Path(tmp) / "f.safetensors"
        )
    lengths = [len(ids) for ids in lm.tokenizer(tag.texts, truncation=True, max_length=max_length)["input_ids"]]
    return {
        "max_length": max_length,
        "batch_size": batch_size,
        "dtype": dtype,
        "texts": tag.num_nodes,
        "seconds": result.seconds,
        "texts_per_s": tag.num_nodes / result.seconds,
        "tokens_per_s": result.num_tokens / result.seconds,
        "gflops": encoder_flops(lengths, lm.model.config) / result.seconds / 1e9,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32])
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--write", type=Path, help="update the encode section of this markdown file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one max length
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.data_root, args.one, args.batch_size[0], args.device, args.dtype[0])))
        return

    device = torch.device(args.device)
    peaks = {dtype: matmul_peak_gflops(device=device, dtype=getattr(torch, dtype)) for dtype in args.dtype}
    rows = []
    for length in args.lengths:
        for dtype in args.dtype:
            for batch in args.batch_size:
                child = [sys.executable, "-m", __spec__.name, "--one", str(length), "--data-root", str(args.data_root)]
                child += ["--batch-size", str(batch), "--device", args.device, "--dtype", dtype]
                rows.append(run_json(child)[0])
                print(rows[-1], file=sys.stderr)
    command = COMMAND if args.device == "cpu" else "python -m benchmarks.encode " + " ".join(sys.argv[1:])
    table = [
        *run_header(command, device=device),
        "GEMM peak measured in this run: " + ", ".join(f"{dtype} {peak:.1f} GFLOP/s" for dtype, peak in peaks.items()),
        "",
        "| max length | dtype | batch | texts | seconds | texts/s | tokens/s | achieved GFLOP/s | % of peak | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        table.append(
            f"| {r['max_length']} | {r['dtype']} | {r['batch_size']} | {r['texts']} | {r['seconds']:.1f} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} "
            f"| {r['gflops']:.1f} | {100 * r['gflops'] / peaks[r['dtype']]:.0f}% | {r['peak_rss_mib']:.0f} |"
        )
    markdown = "\n".join(table)
    print(markdown)
    if args.write:
        write_section(args.write, "encode" if args.device == "cpu" else "encode-cuda", markdown)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
