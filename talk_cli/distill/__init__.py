"""Stage 4: distillation of a TAG into a synthetic graph (TaLK, kernel-features, coresets)."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "INVERSION_BETAS": "talk_cli.distill.representation",
    "KRRFit": "talk_cli.distill.real",
    "RealSide": "talk_cli.distill.real",
    "gcn_accuracy": "talk_cli.distill.real",
    "krr_accuracy": "talk_cli.distill.real",
    "NO_RECIPE": "talk_cli.distill.settings",
    "TOKEN_PHASE": "talk_cli.distill.loop",
    "WARM_START_PHASES": "talk_cli.distill.loop",
    "DistillOutcome": "talk_cli.distill.loop",
    "Distiller": "talk_cli.distill.loop",
    "Interrupted": "talk_cli.distill.loop",
    "StepReport": "talk_cli.distill.loop",
    "StopRequested": "talk_cli.distill.loop",
    "METHODS": "talk_cli.distill.methods",
    "Method": "talk_cli.distill.methods",
    "make_bundle": "talk_cli.distill.run",
    "run_distillation": "talk_cli.distill.run",
    "DistillSettings": "talk_cli.distill.settings",
    "chosen_recipe": "talk_cli.distill.settings",
    "resolve_settings": "talk_cli.distill.settings",
    "distill": "talk_cli.distill.warm_start",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
