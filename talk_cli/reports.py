"""What each command reports, built from the pipeline's results: the lines it prints on stderr and
the object `--json` prints on stdout. Nothing here computes; the CLI only prints these."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from talk_cli.bundle.card import privacy_sentence, warm_start_sentence
from talk_cli.cli_options import flag_of
from talk_cli.data.importer import ImportReport
from talk_cli.distill import METHODS, DistillOutcome, DistillSettings
from talk_cli.distill.loop import below_free_set
from talk_cli.distill.settings import unread_settings
from talk_cli.evaluate import EvalSettings, Evaluation
from talk_cli.pipeline import Prepared


def per_second(count: float, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def encoded_line(prepared: Prepared) -> str:
    encoded, tag = prepared.encoded, prepared.tag
    how = "reused the cache" if encoded.reused else f"encoded {tag.num_nodes} texts ({per_second(tag.num_nodes, encoded.seconds):.1f} texts/s)"
    resumed = f", {encoded.resumed_chunks} chunk(s) resumed" if encoded.resumed_chunks else ""
    return f"features {list(encoded.features.shape)}: {how} in {encoded.seconds:.1f} s{resumed}: {encoded.path}"


def encode_payload(prepared: Prepared) -> dict[str, Any]:
    result, tag = prepared.encoded, prepared.tag
    return {
        "path": str(result.path), "shape": list(result.features.shape), "reused": result.reused,
        "seconds": round(result.seconds, 3),
        "texts_per_second": 0.0 if result.reused else round(per_second(tag.num_nodes, result.seconds), 2),
        "tokens_per_second": round(per_second(result.num_tokens, result.seconds), 1),
        "resumed_chunks": result.resumed_chunks,
        "dataset": {"name": tag.name, "content_hash": tag.content_hash, **tag.notes},
        "model": prepared.lm.identity.as_dict(), "device": str(prepared.device),
    }  # fmt: skip


def settings_lines(settings: DistillSettings, recipe, dataset: str, given: list[str]) -> list[str]:
    """Which recipe was read, and which given settings the method will not read."""
    lines = [f"recipe: {recipe}" if recipe else f"no recipe for {Path(dataset).name!r}: using the defaults"]
    unread = unread_settings(settings.method, given)
    if unread:
        fields = {f.name: f for f in dataclasses.fields(DistillSettings)}
        ignored = ", ".join(flag_of(fields[name]) for name in unread)
        lines.append(f"note: {settings.method} picks real training nodes in one go and runs no loop, so it ignores {ignored}")
    if settings.method == "talk" and settings.init == "vocab" and not settings.warm_starts:
        lines.append(
            "note: --init vocab with --invert-steps 0 starts the token loop from random vocabulary tokens, with no inversion to fit "
            "them first; expect a weaker set (--init texts starts from the seed texts, which the bundle then holds: docs/privacy.md)"
        )
    return lines


def distill_lines(settings: DistillSettings, bundle, outcome: DistillOutcome, out: Path, dataset: str, replaced: bool = False) -> list[str]:
    learned = METHODS[settings.method].learns
    ratio = f"ratio {settings.ratio} of {bundle.dataset.num_train} training nodes" if settings.size is None else "size given"
    # With the feature-to-token warm start, step 0 is that fitted set, not the seed nodes: often the best.
    warm_start = " (the feature-to-token warm start)" if outcome.best_step == 0 and settings.warm_starts else ""
    selection = (
        f"; best validation {settings.select.upper()} accuracy {outcome.best_val_accuracy:.4f} at step {outcome.best_step}{warm_start}" if learned else ""
    )
    resumed = f"; resumed from step {outcome.resumed_from_step}" if outcome.resumed_from_step else ""
    stopped = f"; stopped at step {outcome.stopped_at} (--patience {settings.patience})" if learned and outcome.stopped_at is not None else ""
    warm = outcome.warm_start
    if warm is not None and outcome.stopped_at == 0 and not below_free_set(warm):
        stopped = "; no token loop: the inverted set validates as well as the free set it fits"
    lines = [f"{settings.method}: {dataset} -> {bundle.num_synthetic} synthetic nodes ({ratio}) in {outcome.seconds:.1f} s{selection}{resumed}{stopped}"]
    if learned and outcome.best_step == 0 and settings.steps > 0 and not settings.warm_starts:
        lines.append(
            "note: no step improved validation accuracy on the starting set (best at step 0), so the bundle holds the "
            "initial seed nodes; try a smaller --lr or more --steps, and compare with --method herding"
        )
    if warm is not None and outcome.best_val_accuracy < warm["free_val_accuracy"]:
        lines.append("warning: " + warm_start_sentence(warm, outcome.best_val_accuracy, settings.select))
    if bundle.privacy:
        lines.append(privacy_sentence(bundle.privacy, bundle.num_synthetic))
    return [*lines, f"bundle: {out}" + (" (replaced the bundle that was there)" if replaced else "")]


def distill_payload(prepared: Prepared, settings: DistillSettings, recipe, bundle, outcome: DistillOutcome, out: Path) -> dict[str, Any]:
    learned = METHODS[settings.method].learns
    counts = bundle.labels.bincount(minlength=prepared.tag.num_classes).tolist()
    return {
        "bundle": str(out), "num_synthetic": bundle.num_synthetic, "class_counts": dict(zip(bundle.dataset.label_names, counts)),
        "method": settings.method, "best_step": outcome.best_step if learned else None,
        "val_accuracy": outcome.best_val_accuracy if learned else None, "selected_by": settings.select if learned else None,
        "distill_seconds": round(outcome.seconds, 3), "encode_seconds": round(prepared.encoded.seconds, 3),
        "features_reused": prepared.encoded.reused, "resumed_from_step": outcome.resumed_from_step,
        "stopped_at": outcome.stopped_at if learned else None, "phase_seconds": outcome.phase_seconds,
        "recipe": str(recipe) if recipe else None, "settings": settings.as_dict(), "device": str(prepared.device),
        "privacy": bundle.privacy, "warm_start": outcome.warm_start if learned else None,
    }  # fmt: skip


def evaluate_lines(evaluation: Evaluation, payload: dict[str, Any], settings: EvalSettings, protocol: str, training_set: str) -> list[str]:
    result, reference, full = evaluation.result, evaluation.reference, training_set == "full"
    cached = " (cached reference)" if full and evaluation.reference_cached else ""
    lines = [
        f"{'full training set' if full else training_set}: test accuracy {100 * result['test_accuracy_mean']:.2f} ± {100 * result['test_accuracy_std']:.2f}%, "
        f"macro-F1 {100 * result['test_macro_f1_mean']:.2f} ± {100 * result['test_macro_f1_std']:.2f}% over {result['runs']} runs "
        f"({settings.architecture}, {result['train_seconds_mean']:.1f} s per run){cached}"
    ]
    if protocol == "joint" and "best_epochs" in result:  # a reference cached before it was recorded has none
        lines.append(f"selected epochs: {', '.join(map(str, result['best_epochs']))} (0: the GNN probed on the pretrained LM, before any fine-tuning)")
    if protocol == "joint" and "probe_val_mean" in result:
        lines.append(
            f"validation accuracy: {100 * result['probe_val_mean']:.2f}% probed, "
            f"{100 * result['fine_tuned_val_mean']:.2f}% at the best fine-tuned epoch (means over runs)"
        )
    kind = "joint (LM + GNN) " if protocol == "joint" else ""
    if payload["percent_of_full"] is not None:
        lines.append(
            f"{payload['percent_of_full']:.1f}% of the {kind}full-data reference ({100 * reference['test_accuracy_mean']:.2f}%, {reference['runs']} runs, cached)"
        )
    elif not full:
        lines.append(
            f"no cached {kind}full-data reference with these settings: run `talk evaluate --full{' --protocol joint' if protocol == 'joint' else ''}` "
            "with the same --dataset and model options to get % of full"
        )
    if payload.get("percent_of_frozen_full") is not None:
        lines.append(
            f"{payload['percent_of_frozen_full']:.1f}% of the frozen-LM (gnn) full-data reference ({100 * payload['frozen_full_test_accuracy_mean']:.2f}%)"
        )
    return lines


def import_lines(report: ImportReport, nodes: Path) -> list[str]:
    names = report.label_names
    lines = [
        f"{'replaced ' if report.replaced else ''}{report.out}: {report.num_nodes} nodes, {len(names)} classes ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}), "
        f"{report.num_edges} edge rows"
    ]
    if report.dropped_edges:
        lines.append(f"note: dropped {report.dropped_edges} edge row(s) naming an id that is not in {nodes}")
    if report.empty_texts:
        lines.append(f"note: {report.empty_texts} node(s) have no text")
    return [*lines, *(f"note: {note} (on loading)" for note in report.notes)]


def import_payload(report: ImportReport) -> dict[str, Any]:
    return {**dataclasses.asdict(report), "out": str(report.out)}
