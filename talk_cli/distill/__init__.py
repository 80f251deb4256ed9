"""Stage 4: TaLK distillation of a TAG into a synthetic graph."""

from talk_cli.distill.run import make_bundle, run_distillation
from talk_cli.distill.settings import DistillSettings, recipe_path, resolve_settings
from talk_cli.distill.talk import DistillOutcome, StepReport, TalkDistiller, distill_talk

__all__ = [
    "DistillOutcome",
    "DistillSettings",
    "StepReport",
    "TalkDistiller",
    "distill_talk",
    "make_bundle",
    "recipe_path",
    "resolve_settings",
    "run_distillation",
]
