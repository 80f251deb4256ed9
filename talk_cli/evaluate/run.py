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
from talk_cli.evaluate.joint import evaluate_joint
from talk_cli.evaluate.protocol import cached_reference, evaluate_bundle, evaluate_full, reference_key
from talk_cli.evaluate.train import EvalSettings

FULL_EPOCHS = 200  # the gnn protocol's default epochs, the reference for joint results


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
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(result, full-data reference or None). Without a bundle the result is the reference,
    computed once and cached. A bundle's gnn result is compared with the cached reference of the
    same settings; a joint result with the gnn reference at its usual epochs."""
    same = settings if protocol == "gnn" else dataclasses.replace(settings, epochs=FULL_EPOCHS)
    key = reference_key(tag, lm.identity, max_length, same)
    reference = cached_reference(key)
    if bundle is None:
        reference = reference or evaluate_full(tag, features, settings, device, key, on_epoch)
        return reference, reference
    if protocol == "joint":
        return evaluate_joint(bundle, tag, lm, settings, max_length, device, on_epoch).as_dict(), reference
    return evaluate_bundle(bundle, tag, features, settings, device, on_epoch).as_dict(), reference


def result_payload(
    result: dict[str, Any],
    reference: dict[str, Any] | None,
    protocol: str,
    settings: EvalSettings,
    tag: TAG,
    training_set: str,
    mismatches: list[str],
) -> dict[str, Any]:
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
        "date": datetime.date.today().isoformat(),
    }
    if training_set != "full" and reference is not None:
        payload["percent_of_full"] = round(100 * result["test_accuracy_mean"] / reference["test_accuracy_mean"], 2)
        payload["full_test_accuracy_mean"] = round(reference["test_accuracy_mean"], 6)
    return payload


def write_back(bundle: Bundle, path: Path, payload: dict[str, Any]) -> None:
    """Store the result in the manifest (tensors unchanged, so the checksum stays valid)."""
    bundle.evaluation = {**bundle.evaluation, f"{payload['protocol']}-{payload['model_type']}-{payload['dataset']}": payload}
    write_bundle(bundle, path, force=True)
