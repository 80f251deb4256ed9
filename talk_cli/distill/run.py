"""One `talk distill` run: resume or start, distil, write the bundle atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from talk_cli.bundle import Bundle, DatasetInfo, DistillationInfo, LMInfo, write_bundle
from talk_cli.bundle.bundle import check_target
from talk_cli.data.tag import TAG
from talk_cli.distill.coreset import CORESETS, coreset
from talk_cli.distill.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.talk import DistillOutcome, KernelFeaturesDistiller, StepReport, TalkDistiller, distill_talk
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError


def make_bundle(tag: TAG, lm: LanguageModel, settings: DistillSettings, outcome: DistillOutcome) -> Bundle:
    if settings.method in ("talk", "kernel-features"):
        hyperparameters = {k: v for k, v in settings.as_dict().items() if k not in ("method", "ratio", "seed")}
        hyperparameters["run"] = {
            "best_step": outcome.best_step,
            "val_krr_accuracy": round(outcome.best_val_accuracy, 6),
            "seconds": round(outcome.seconds, 3),
            "resumed_from_step": outcome.resumed_from_step,
            "seed_nodes": outcome.seed_nodes.tolist(),
        }
    else:  # a coreset: only these settings mean anything
        hyperparameters = {"size": settings.size, "max_length": settings.max_length, "nodes": outcome.seed_nodes.tolist()}
    return Bundle(
        token_embeddings=outcome.embeddings,
        attention_mask=outcome.attention_mask,
        adjacency=outcome.adjacency,
        labels=outcome.labels,
        features=outcome.features,
        soft_labels=outcome.soft_labels,
        dataset=DatasetInfo(
            name=tag.name,
            content_hash=tag.content_hash,
            num_nodes=tag.num_nodes,
            num_classes=tag.num_classes,
            label_names=list(tag.label_names),
            split=tag.split_description,
            num_train=int(tag.train_mask.sum()),
        ),
        lm=LMInfo(
            name=lm.identity.name,
            hidden_size=lm.identity.hidden_size,
            tokenizer=lm.identity.tokenizer,
            weights_sha256=lm.identity.weights_sha256,
            pooling="mean",
            max_length=settings.max_length,
        ),
        distillation=DistillationInfo(
            method=settings.method,
            ratio=settings.ratio if settings.size is None else None,
            ratio_of="train_nodes",
            num_synthetic=int(outcome.labels.shape[0]),
            seed=settings.seed,
            settings=hyperparameters,
        ),
    )


def run_distillation(
    tag: TAG,
    lm: LanguageModel,
    real_features: torch.Tensor,
    settings: DistillSettings,
    device: torch.device,
    out: Path,
    force: bool = False,
    resume: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
) -> tuple[Bundle, DistillOutcome]:
    """Distil `tag` into the bundle `out`, checkpointing beside it as it goes."""
    out = Path(out)
    check_target(out, force)  # refuse now, not after a long run
    if settings.method in CORESETS:
        if resume:
            raise SettingsError("--resume applies to --method talk only (a coreset is picked in one go)")
        started = time.perf_counter()
        outcome = coreset(settings.method, tag, lm, real_features, settings)
        outcome.seconds = time.perf_counter() - started
    else:
        learner = KernelFeaturesDistiller if settings.method == "kernel-features" else TalkDistiller
        distiller = learner(tag, lm, real_features, settings, device)
        if resume:
            load_checkpoint(distiller, out)
        outcome = distill_talk(distiller, on_step, on_checkpoint=lambda d: save_checkpoint(d, out))
    bundle = make_bundle(tag, lm, settings, outcome)
    write_bundle(bundle, out, force=force)
    remove_checkpoint(out)
    return bundle, outcome
