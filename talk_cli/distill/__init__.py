"""Stage 4: distillation of a TAG into a synthetic graph (TaLK, kernel-features, coresets)."""

from talk_cli.distill.loop import TOKEN_PHASE, WARM_START_PHASES, DistillOutcome, Distiller, Interrupted, StepReport, StopRequested
from talk_cli.distill.methods import METHODS, Method
from talk_cli.distill.run import make_bundle, run_distillation
from talk_cli.distill.settings import DistillSettings, chosen_recipe, resolve_settings
from talk_cli.distill.warm_start import distill

__all__ = [
    "METHODS",
    "DistillOutcome",
    "DistillSettings",
    "Distiller",
    "Interrupted",
    "Method",
    "StepReport",
    "StopRequested",
    "TOKEN_PHASE",
    "WARM_START_PHASES",
    "chosen_recipe",
    "distill",
    "make_bundle",
    "resolve_settings",
    "run_distillation",
]
