"""What each encoder knob gives: MiniLM on a sample of Cora's texts at 128 tokens.

    python -m benchmarks.encode_knobs [--texts 768] [--write docs/performance.md]

Variants of `encode_texts` (the encoder's inner loop): the default (batch 32, transformers'
default attention, which is SDPA), eager attention, larger batches, and `torch.compile`. Each
row gives the achieved GFLOP/s of the encoder's useful work (as in benchmarks/encode.py), its share of
the fp32 GEMM peak measured in the same run, and the largest difference of its features
from the default's. The best of 2 repeats is kept, to damp noise from other work on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import matmul_peak_gflops, run_header, write_section
from benchmarks.encode import encoder_flops

COMMAND = "python -m benchmarks.encode_knobs --write docs/performance.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--texts", type=int, default=768)
    parser.add_argument("--write", type=Path, help="update the encode-knobs section of this markdown file")
    args = parser.parse_args()

    from transformers import AutoModel

    from talk_cli.data import load_tag
    from talk_cli.encode import EncodeSettings, default_model_path, encode_texts, load_language_model

    texts = load_tag("cora", args.data_root).texts[: args.texts]
    lm = load_language_model()
    eager = dataclasses.replace(lm, model=AutoModel.from_pretrained(default_model_path(), attn_implementation="eager").eval())
    compiled = dataclasses.replace(lm, model=torch.compile(lm.model))
    lengths = [len(ids) for ids in lm.tokenizer(texts, truncation=True, max_length=128)["input_ids"]]
    flops = encoder_flops(lengths, lm.model.config)
    variants = [
        ("default: batch 32, SDPA attention", lm, 32),
        ("eager attention, batch 32", eager, 32),
        ("batch 64", lm, 64),
        ("batch 128", lm, 128),
        ("torch.compile, batch 32", compiled, 32),
    ]
    peak = matmul_peak_gflops()
    rows, reference = [], None
    for name, model, batch in variants:
        settings = EncodeSettings(max_length=128, batch_size=batch)
        encode_texts(texts[:batch], model, settings, torch.device("cpu"))  # warm-up (compiles)
        best, features = float("inf"), None
        for _ in range(2):
            started = time.perf_counter()
            features, _ = encode_texts(texts, model, settings, torch.device("cpu"))
            best = min(best, time.perf_counter() - started)
        reference = features if reference is None else reference
        rows.append((name, flops / best / 1e9, float((features - reference).abs().max())))
        print(rows[-1], file=sys.stderr)

    lines = [
        *run_header(COMMAND),
        f"{len(texts)} Cora texts at 128 tokens at most; fp32 GEMM peak measured in this run: {peak:.1f} GFLOP/s",
        "",
        "| variant | achieved GFLOP/s | % of peak | largest feature difference from the default |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {rate:.1f} | {100 * rate / peak:.0f}% | {diff:.1e} |" for name, rate, diff in rows),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        write_section(args.write, "encode-knobs", markdown)


if __name__ == "__main__":
    main()
