"""A kernel-method run from start to finish: the feature-to-token warm start (talk with
`invert_steps` > 0), then the outer loop, then the best state (docs/method.md).

The warm start chains two loops before the token loop: the same kernel loop on free feature
vectors from the same seeds (no LM in it, so it is cheap), then an inversion that fits the token
embeddings so that pool(LM(E)) matches the vectors it selected; the token loop takes its learned
labels and structure too. Gradients through the LM move E slowly and unevenly, while free input
embeddings let the LM reproduce much of the free solution (`inversion_cosine` says how closely).

The inversion is judged as every loop is, by validation: every `eval_every` steps its set is
validated and the best kept, and it stops once that set validates as well as the free set it
fits (there is nothing left to gain), at the cosine goal, or after `invert_steps`. Measured, the
validation of the inverted set levels off well before its cosine does (docs/method.md, "What limits
the inversion"). The token loop then runs only to close a gap: when the inverted
set validates below the free set, with `CATCH_UP_PATIENCE` validations of patience; when it does
not, the run ends there: after an inversion run to its cosine goal, no token step beat its set in
any run measured (docs/method.md, "Warm start").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from talk_cli.distill.loop import WARM_START_PHASES, Distiller, DistillOutcome, StepReport, run_loop
from talk_cli.distill.representation import INVERSION_LR_SCALE
from talk_cli.kernel import KERNEL_DTYPE


def distill(
    distiller: Distiller,
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[Distiller], None] | None = None,
) -> DistillOutcome:
    """Run `distiller` from wherever it stands (resume): the warm start when it is due, the outer
    loop (unless the warm start left nothing for it to close), then its best state. Each step of
    every stage goes to `on_step`, marked with its phase."""
    started = time.perf_counter()
    resumed_from = distiller.step
    if distiller.step == 0 and distiller.settings.warm_starts:
        warm_start(distiller, on_step)
        if not distiller.behind_start:
            distiller.stop_at_start()
    run_loop(distiller, on_step, on_checkpoint)
    outcome = distiller.finish()
    outcome.seconds = time.perf_counter() - started
    outcome.resumed_from_step = resumed_from
    return outcome


def warm_start(distiller: Distiller, on_step: Callable[[StepReport], None] | None = None) -> None:
    """Start `distiller`'s token loop where a free-feature loop ends, from the inverted set that
    validated best: it is the token loop's step 0."""
    started = time.perf_counter()
    settings, free_phase, inversion_phase = distiller.settings, *WARM_START_PHASES
    # The free-feature loop is a second loop over the same shared side: no second LM copy, the same seeds.
    free_settings = dataclasses.replace(settings, method="kernel-features", invert_steps=0, inner_every=0)
    free = Distiller(distiller.shared, free_settings, stage=free_phase)
    target = distill(free, on_step and (lambda report: on_step(dataclasses.replace(report, phase=free_phase))))
    learned = {k: v for k, v in free.synthetic.state_dict().items() if not k.startswith("features.")}
    distiller.synthetic.load_state_dict({**distiller.synthetic.state_dict(), **learned})
    target_features = target.features.to(distiller.device)
    # the last fit step validated, the last features measured, the best set's (updates, cosine with the free vectors)
    seen = {"step": 0, "features": None, "best": (0, float("nan"))}

    def validate(step: int, features: torch.Tensor) -> float:
        """Validate E as measured at fit step `step` (after step - 1 updates)."""
        seen["step"], before = step, distiller.best
        val = distiller.remember_if_best(features.to(KERNEL_DTYPE), phase=inversion_phase)
        if distiller.best is not before:
            seen["best"] = (step - 1, float(torch.nn.functional.cosine_similarity(features, target_features).mean()))
        return val

    def on_fit_step(step: int, error: float, features: torch.Tensor) -> bool:
        seen["features"] = features
        # E after eval_every updates, 2 x eval_every, ...: the starting E is no candidate
        val = validate(step, features) if step > 1 and (step - 1) % settings.eval_every == 0 else None
        if on_step:
            on_step(StepReport(step, settings.invert_steps, error, val, distiller.best["val"], inversion_phase))
        return val is not None and val >= target.best_val_accuracy  # as good as the set it fits: done

    with distiller.clock(inversion_phase):
        taken, reached = distiller.synthetic.representation.fit(
            target_features, settings.invert_steps, settings.lr * INVERSION_LR_SCALE, settings.invert_cosine, on_fit_step
        )
        # A validation that reached the free set's ended the fit at the state it judged; otherwise
        # the fit ended at the cosine goal (perhaps between validations) or after its last update.
        if distiller.best["val"] < target.best_val_accuracy:
            if settings.invert_cosine and reached >= settings.invert_cosine:
                if seen["step"] != taken:
                    validate(taken, seen["features"])
            else:
                validate(taken + 1, distiller.features())
    distiller.synthetic.load_state_dict(distiller.best["state"])  # the inverted set that validated best
    distiller.warm_start_val = distiller.best["val"]
    distiller.checks_since_best = 0
    updates, cosine = seen["best"]
    distiller.warm_start_report = {
        "free_val_accuracy": round(target.best_val_accuracy, 6),
        "free_best_step": target.best_step,
        "inverted_val_accuracy": round(distiller.warm_start_val, 6),
        "inversion_cosine": round(cosine, 6),  # of the inverted set kept, with the free vectors
        "inversion_best_step": updates,  # the inversion's updates behind the set kept
        "inversion_steps": taken,
        "seconds": round(time.perf_counter() - started, 3),
    }
