"""Stage 6: train on a bundle, test on the real graph (and the full-data reference)."""

from talk_cli.evaluate.gnn import evaluate_bundle, evaluate_full
from talk_cli.evaluate.joint import evaluate_joint, evaluate_joint_full
from talk_cli.gnn.models import ARCHITECTURES, build_model
from talk_cli.evaluate.reference import cached_reference, reference_key, store_reference
from talk_cli.evaluate.run import Evaluation, check_match, result_payload, run_evaluation, write_back
from talk_cli.gnn.train import PROTOCOLS, EvalSettings, RealNodes, Summary, Training, train_runs, training_defaults

__all__ = [
    "ARCHITECTURES",
    "PROTOCOLS",
    "EvalSettings",
    "Evaluation",
    "RealNodes",
    "Summary",
    "Training",
    "build_model",
    "cached_reference",
    "check_match",
    "evaluate_bundle",
    "evaluate_full",
    "evaluate_joint",
    "evaluate_joint_full",
    "reference_key",
    "result_payload",
    "run_evaluation",
    "store_reference",
    "train_runs",
    "training_defaults",
    "write_back",
]
