"""Stage 6: train on a bundle, test on the real graph (and the full-data reference)."""

from talk_cli.evaluate.models import ARCHITECTURES, build_model
from talk_cli.evaluate.protocol import (
    cached_reference,
    check_match,
    evaluate_bundle,
    evaluate_full,
    mismatches,
    reference_key,
)
from talk_cli.evaluate.run import result_payload, run_evaluation, write_back
from talk_cli.evaluate.train import EvalSettings, Summary, train_runs

__all__ = [
    "ARCHITECTURES",
    "EvalSettings",
    "Summary",
    "build_model",
    "cached_reference",
    "check_match",
    "evaluate_bundle",
    "evaluate_full",
    "mismatches",
    "reference_key",
    "result_payload",
    "run_evaluation",
    "train_runs",
    "write_back",
]
