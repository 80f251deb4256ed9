"""Stage 6: train on a bundle, test on the real graph (and the full-data reference)."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "bundle_training": "talk_cli.evaluate.gnn",
    "evaluate_bundle": "talk_cli.evaluate.gnn",
    "evaluate_full": "talk_cli.evaluate.gnn",
    "evaluate_joint": "talk_cli.evaluate.joint",
    "evaluate_joint_full": "talk_cli.evaluate.joint",
    "ARCHITECTURES": "talk_cli.gnn.settings",
    "build_model": "talk_cli.gnn.models",
    "cached_reference": "talk_cli.evaluate.reference",
    "reference_key": "talk_cli.evaluate.reference",
    "store_reference": "talk_cli.evaluate.reference",
    "Evaluation": "talk_cli.evaluate.run",
    "check_match": "talk_cli.evaluate.run",
    "result_payload": "talk_cli.evaluate.run",
    "run_evaluation": "talk_cli.evaluate.run",
    "write_back": "talk_cli.evaluate.run",
    "PROTOCOLS": "talk_cli.gnn.settings",
    "EvalSettings": "talk_cli.gnn.settings",
    "RealNodes": "talk_cli.gnn.train",
    "Summary": "talk_cli.gnn.train",
    "Training": "talk_cli.gnn.train",
    "train_runs": "talk_cli.gnn.train",
    "training_defaults": "talk_cli.gnn.settings",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
