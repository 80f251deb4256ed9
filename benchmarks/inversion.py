"""The feature-to-token inversion alone, for choosing `--invert-cosine`: for one dataset (with its
recipe) and distillation seed, the free-feature loop once, then the inversion from the seed texts
for each LR:MAX_STEPS:COSINE[:BETA1:BETA2] given (cosine 0: every step runs; Adam's moment decays
default to the inversion's own). Prints the steps taken, the seconds, the mean cosine reached and
the inverted set's GCN validation accuracy (what `--select gcn` scores).

    python -m benchmarks.inversion cora 0 0.01:100:0.98 0.01:100:0.99 0.01:100:0
    python -m benchmarks.inversion arxiv_2023 0 0.01:100:0.97 0.01:100:0.98 0.01:100:0.99 0.01:100:0.995
    python -m benchmarks.inversion cora 0 0.03:100:0.99 0.05:100:0.99 0.1:100:0.99
    python -m benchmarks.inversion cora SEED 0.01:100:0.99 0.015:70:0.99 0.02:60:0.99 0.01:75:0.99   # SEED 0, 1, 2
    python -m benchmarks.inversion DATASET SEED 0.01:100:0.99:0.9:0.999 0.01:100:0.99:0.8:0.9   # cora, arxiv_2023, demo; SEED 0, 1, 2
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from talk_cli import pipeline
from talk_cli.distill import INVERSION_BETAS, WARM_START_PHASES, Distiller, distill, gcn_accuracy
from talk_cli.encode import EncodeSettings
from talk_cli.kernel import KERNEL_DTYPE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("seed", type=int)
    parser.add_argument("variants", nargs="+", help="LR:MAX_STEPS:COSINE[:BETA1:BETA2]")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings, _ = pipeline.distill_settings(args.dataset, seed=args.seed)
    prepared = pipeline.prepare(pipeline.load_dataset(args.dataset), settings=EncodeSettings(max_length=settings.max_length))
    tokens = Distiller.start(prepared.tag, prepared.lm, prepared.features, settings, prepared.device)
    free_settings = dataclasses.replace(settings, method="kernel-features", invert_steps=0)
    free = Distiller(tokens.shared, free_settings, stage=WARM_START_PHASES[0])
    target = distill(free)
    start = tokens.synthetic.representation.state_dict()
    print(f"{args.dataset} seed {args.seed}: free val {target.best_val_accuracy:.4f} (step {target.best_step})", flush=True)
    for variant in args.variants:
        lr, max_steps, cosine, *given_betas = (float(part) for part in variant.split(":"))
        betas = tuple(given_betas) or INVERSION_BETAS
        tokens.synthetic.representation.load_state_dict(start)
        started = time.perf_counter()
        steps, reached = tokens.synthetic.representation.fit(target.features, int(max_steps), lr, cosine, betas=betas)
        seconds = time.perf_counter() - started
        val = gcn_accuracy(tokens.real, tokens.synthetic, tokens.features().to(KERNEL_DTYPE), tokens.settings.seed)
        print(
            f"  lr {lr} max {max_steps:.0f} goal {cosine} betas {betas}: {steps} steps, {seconds:.1f} s, cosine {reached:.4f}, inverted GCN val {val:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
