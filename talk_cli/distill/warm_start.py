"""A kernel-method run from start to finish: the feature-to-token warm start (talk with
`invert_steps` > 0), then the outer loop, then the best state (docs/method.md).

The warm start chains two loops before the token loop: the same kernel loop on free feature
vectors from the same seeds (no LM in it, so it is cheap), then an inversion that fits the token
embeddings so that pool(LM(E)) matches the vectors it selected; the token loop takes its learned
labels and structure too. Gradients through the LM move E slowly and unevenly, while free input
embeddings let the LM reproduce much of the free solution (`inversion_cosine` says how closely).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from talk_cli.distill.loop import WARM_START_PHASES, DistillOutcome, Distiller, StepReport, run_loop
from talk_cli.kernel import KERNEL_DTYPE


def distill(
    distiller: Distiller,
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[Distiller], None] | None = None,
) -> DistillOutcome:
    """Run `distiller` from wherever it stands (resume): the warm start when it is due, the outer
    loop, then its best state. Each step of every stage goes to `on_step`, marked with its phase."""
    started = time.perf_counter()
    resumed_from = distiller.step
    if distiller.step == 0 and distiller.settings.warm_starts:
        warm_start(distiller, on_step)
    run_loop(distiller, on_step, on_checkpoint)
    outcome = distiller.finish()
    outcome.seconds = time.perf_counter() - started
    outcome.resumed_from_step = resumed_from
    return outcome


def warm_start(distiller: Distiller, on_step: Callable[[StepReport], None] | None = None) -> None:
    """Start `distiller`'s token loop where a free-feature loop ends, and validate that start once:
    it is the token loop's step 0."""
    started = time.perf_counter()
    settings, free_phase, inversion_phase = distiller.settings, *WARM_START_PHASES
    free = Distiller(
        distiller.tag, distiller.lm, distiller.real_features, dataclasses.replace(settings, method="kernel-features", invert_steps=0, inner_every=0),
        distiller.device, real=distiller.real, seed_nodes=distiller.seed_nodes, clock=distiller.clock, stage=free_phase,
    )  # fmt: skip
    target = distill(free, on_step and (lambda report: on_step(dataclasses.replace(report, phase=free_phase))))
    learned = {k: v for k, v in free.synthetic.state_dict().items() if not k.startswith("features.")}
    distiller.synthetic.load_state_dict({**distiller.synthetic.state_dict(), **learned})

    def on_fit_step(step: int, loss: float) -> None:
        on_step(StepReport(step, settings.invert_steps, loss, None, target.best_val_accuracy, inversion_phase))

    with distiller.clock(inversion_phase):
        taken, _ = distiller.synthetic.representation.fit(
            target.features.to(distiller.device), settings.invert_steps, settings.lr, settings.invert_cosine, on_step and on_fit_step
        )
    features = distiller.features()
    distiller.warm_start_val = distiller.remember_if_best(features.to(KERNEL_DTYPE))
    distiller.warm_start_report = {
        "free_val_accuracy": round(target.best_val_accuracy, 6),
        "free_best_step": target.best_step,
        "inverted_val_accuracy": round(distiller.warm_start_val, 6),
        "inversion_cosine": round(float(torch.nn.functional.cosine_similarity(features, target.features.to(distiller.device)).mean()), 6),
        "inversion_steps": taken,
        "seconds": round(time.perf_counter() - started, 3),
    }
