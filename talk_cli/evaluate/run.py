"""One `talk evaluate`: pick the protocol, find or compute the full-data reference, and shape
the result that is printed and optionally written back into the bundle."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import torch

from talk_cli.bundle import Bundle, write_bundle
from talk_cli.data.tag import TAG
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError
from talk_cli.evaluate.gnn import evaluate_bundle, evaluate_full
from talk_cli.evaluate.joint import evaluate_joint, evaluate_joint_full
from talk_cli.evaluate.reference import cached_reference, reference_key, store_reference
from talk_cli.gnn.settings import EvalSettings, training_defaults
from talk_cli.memory import peak_rss_mib
from talk_cli.provenance import Provenance


@dataclasses.dataclass
class Evaluation:
    result: dict[str, Any]
    reference: dict[str, Any] | None  # the full-data reference of the same protocol, when there is one
    reference_cached: bool  # the reference came from the cache (not computed by this call)
    frozen_reference: dict[str, Any] | None = None  # joint results: the gnn reference, shown beside


def check_match(bundle: Bundle, given: Provenance, allow_mismatch: bool) -> list[str]:
    """Ways in which the bundle was not made from this data and LM; an error unless allowed."""
    problems = Provenance.of_bundle(bundle).mismatches(given)
    if problems and not allow_mismatch:
        raise SettingsError("the bundle does not match the data and model given: " + "; ".join(problems) + " (--allow-mismatch to evaluate anyway)")
    return problems


def run_evaluation(
    tag: TAG,
    lm: LanguageModel,
    features: torch.Tensor,
    bundle: Bundle | None,
    settings: EvalSettings,
    protocol: str,
    max_length: int,
    device: torch.device,
    on_epoch=None,
) -> Evaluation:
    """Without a bundle the result is the reference of the protocol, computed once and cached. A
    bundle's result is compared with the cached reference of the same protocol and model
    settings (joint: at the full data's default LM rate and epochs); a joint result also with the
    frozen-LM (gnn) reference of the same model."""
    provenance = Provenance.of(tag, lm.identity, max_length)
    reference_settings = settings
    if bundle is not None and protocol == "joint":
        # A bundle and the full data are each fine-tuned at their own LM rate (TRAINING_DEFAULTS):
        # the bundle's result is compared with the full data trained the full data's way.
        reference_settings = dataclasses.replace(settings, **training_defaults("joint", True))
    key = reference_key(provenance, reference_settings, protocol)
    reference = cached_reference(key)
    if bundle is None:
        if reference is not None and reference["runs"] >= settings.runs:
            return Evaluation(reference, reference, True)
        if protocol == "joint":
            summary = evaluate_joint_full(tag, lm, features, settings, max_length, device, on_epoch)
        else:
            summary = evaluate_full(tag, features, settings, device, on_epoch)
        # The training's peak, kept with the result: a later reader of the cache did not train it.
        reference = {**summary.as_dict(), "peak_rss_mib": peak_rss_mib()}
        store_reference(key, reference)
        return Evaluation(reference, reference, False)
    if protocol == "gnn":
        result = evaluate_bundle(bundle, tag, features, settings, device, on_epoch)
        return Evaluation(result.as_dict(), reference, reference is not None)
    result = evaluate_joint(bundle, tag, lm, features, settings, max_length, device, on_epoch)
    frozen = cached_reference(reference_key(provenance, dataclasses.replace(settings, **training_defaults("gnn", True))))
    return Evaluation(result.as_dict(), reference, reference is not None, frozen)


def result_payload(evaluation: Evaluation, protocol: str, settings: EvalSettings, tag: TAG, training_set: str, mismatches: list[str]) -> dict[str, Any]:
    result, reference = evaluation.result, evaluation.reference
    payload = {
        "protocol": protocol,
        "model_type": settings.architecture,
        "dataset": tag.name,
        "training_set": training_set,
        **{k: round(v, 6) if isinstance(v, float) else v for k, v in result.items()},
        "percent_of_full": None,
        "epochs": settings.epochs,
        "seed": settings.seed,
        "mismatches": mismatches,
        "reference_cached": evaluation.reference_cached,
        "date": datetime.date.today().isoformat(),
    }
    if training_set != "full" and reference is not None:
        payload["percent_of_full"] = round(100 * result["test_accuracy_mean"] / reference["test_accuracy_mean"], 2)
        payload["full_test_accuracy_mean"] = round(reference["test_accuracy_mean"], 6)
        payload["full_runs"] = reference["runs"]
    if training_set != "full" and evaluation.frozen_reference is not None:
        frozen = evaluation.frozen_reference
        payload["percent_of_frozen_full"] = round(100 * result["test_accuracy_mean"] / frozen["test_accuracy_mean"], 2)
        payload["frozen_full_test_accuracy_mean"] = round(frozen["test_accuracy_mean"], 6)
    return payload


def write_back(bundle: Bundle, path: Path, payload: dict[str, Any]) -> None:
    """Store the result in the manifest (tensors unchanged, so the checksum stays valid)."""
    bundle.evaluation = {**bundle.evaluation, f"{payload['protocol']}-{payload['model_type']}-{payload['dataset']}": payload}
    write_bundle(bundle, path, force=True)
