"""What limits the feature-to-token inversion (issue 58): for one dataset, LM and distillation
seed, the free-feature loop once, then the inversion from the same starting tokens under each
variant LOSS:LR:STEPS, validating the token set every `--every` steps (the GCN that `--select gcn`
scores with). Prints, per variant, the mean cosine with the free vectors and the GCN validation at
each check, the output norm reached against the target's, and the seconds.

    python -m benchmarks.inversion_limits cora 0 mse:0.01:60 cos:0.04:60 --every 5
    python -m benchmarks.inversion_limits cora 0 mse:0.01:60 cos:0.04:60 --every 5 --model "$(python scripts/get_mpnet.py)"
    python -m benchmarks.inversion_limits cora 0 mse:0.01:100 mse:0.02:100 cos:0.01:100 --every 0 --model "$(python scripts/get_mpnet.py)"
    python -m benchmarks.inversion_limits cora 0 natural:0.01:40 --every 5   # the target rescaled to the real features' mean norm
    python -m benchmarks.inversion_limits cora SEED mse:0.01:60 rel:0.02:60 --every 10 [--model ...]   # SEED 0, 1, 2

LOSS: `mse`, the library's (squared error to the free vectors); `cos`, one minus the cosine (the
direction alone); `rel`, squared error relative to each target's squared norm plus one minus the
cosine; `natural`, squared error to the free vectors rescaled to the mean norm of the
real nodes' features (the LM's usual output norm). The library's inversion is `mse` with Adam at
moment decays (0.8, 0.9); the loop here is written out so that the loss can vary, and is a
measurement of alternatives, not a second implementation in use. `--every 0` validates only the
end (the timing then counts the LM passes alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from talk_cli import pipeline
from talk_cli.distill import INVERSION_BETAS, WARM_START_PHASES, Distiller, distill, gcn_accuracy
from talk_cli.encode import EncodeSettings, encode_embeddings, load_language_model
from talk_cli.kernel import KERNEL_DTYPE

LOSSES = {
    "mse": lambda out, target: (out - target).pow(2).sum(),
    "natural": lambda out, target: (out - target).pow(2).sum(),  # its target is rescaled below
    "cos": lambda out, target: (1 - F.cosine_similarity(out, target)).sum(),
    # squared error relative to each target's squared norm, plus one minus the cosine
    "rel": lambda out, target: ((out - target).pow(2).sum(1) / target.pow(2).sum(1) + 1 - F.cosine_similarity(out, target)).sum(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("seed", type=int)
    parser.add_argument("variants", nargs="+", help="LOSS:LR:STEPS")
    parser.add_argument("--model", help="the LM (default: talk's)")
    parser.add_argument("--every", type=int, default=5, help="validate every this many steps (0: only at the end)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings, _ = pipeline.distill_settings(args.dataset, seed=args.seed)
    lm = load_language_model(args.model)
    prepared = pipeline.prepare(pipeline.load_dataset(args.dataset), lm, settings=EncodeSettings(max_length=settings.max_length))
    tokens = Distiller.start(prepared.tag, prepared.lm, prepared.features, settings, prepared.device)
    free_settings = dataclasses.replace(settings, method="kernel-features", invert_steps=0)
    free = Distiller(tokens.shared, free_settings, stage=WARM_START_PHASES[0])
    target = distill(free)
    learned = {k: v for k, v in free.synthetic.state_dict().items() if not k.startswith("features.")}
    tokens.synthetic.load_state_dict({**tokens.synthetic.state_dict(), **learned})
    real_norm = prepared.features.float().norm(dim=1).mean()
    print(
        f"{args.dataset} seed {args.seed}, LM {lm.identity.name}: free GCN val {target.best_val_accuracy:.4f} (step {target.best_step}); "
        f"free vectors' mean norm {target.features.norm(dim=1).mean():.3f}, real features' {real_norm:.3f}",
        flush=True,
    )
    tokens_rep = tokens.synthetic.representation
    start = tokens_rep.state_dict()

    def validate() -> float:
        return gcn_accuracy(tokens.real, tokens.synthetic, tokens.features().to(KERNEL_DTYPE), settings.seed)

    for variant in args.variants:
        loss_name, lr, steps = variant.split(":")
        goal = target.features / target.features.norm(dim=1, keepdim=True) * real_norm if loss_name == "natural" else target.features
        tokens_rep.load_state_dict(start)
        optimizer = torch.optim.Adam([tokens_rep.embeddings], lr=float(lr), betas=INVERSION_BETAS)
        trace, started = [], time.perf_counter()
        for step in range(1, int(steps) + 1):
            optimizer.zero_grad()
            out = encode_embeddings(tokens_rep.lm, tokens_rep.embeddings, tokens_rep.mask).float()
            LOSSES[loss_name](out, goal).backward()
            optimizer.step()
            if args.every and step % args.every == 0:
                cosine = float(F.cosine_similarity(tokens_rep.features(), target.features).mean())
                trace.append(f"{step}: {cosine:.3f}/{validate():.3f}")
        seconds = time.perf_counter() - started
        out = tokens_rep.features()
        print(
            f"  {variant}: {seconds:.1f} s; cosine {float(F.cosine_similarity(out, target.features).mean()):.4f}, GCN val {validate():.4f}, "
            f"output norm {out.norm(dim=1).mean():.3f} (free vectors {target.features.norm(dim=1).mean():.3f})",
            flush=True,
        )
        if trace:
            print("    step: cosine/GCN val  " + "  ".join(trace), flush=True)


if __name__ == "__main__":
    main()
