"""One distillation run: pick a coreset, or run a kernel method (resuming from its checkpoint
when asked), and write the bundle atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from talk_cli import distributed
from talk_cli.bundle import Bundle, DatasetInfo, DistillationInfo, LMInfo, spec, write_bundle
from talk_cli.bundle.bundle import check_target
from talk_cli.bundle.card import DEFAULT_LICENSE
from talk_cli.bundle.errors import TextOverlapError
from talk_cli.bundle.privacy import measure_exposure
from talk_cli.data.tag import TAG
from talk_cli.device import environment
from talk_cli.distill.checkpoint import checkpoint_dir, load_checkpoint, remove_checkpoint, save_checkpoint
from talk_cli.distill.coreset import induced_adjacency, select
from talk_cli.distill.loop import Distiller, DistillOutcome, Interrupted, StepReport, StopRequested
from talk_cli.distill.methods import METHODS
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import class_allocation, initial_embeddings
from talk_cli.distill.warm_start import distill
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError
from talk_cli.memory import peak_rss_mib
from talk_cli.provenance import Provenance, portable_command

RESTARTED_SETTINGS = ("steps", "checkpoint_every", "max_text_overlap")  # a resumed run may change these


def checkpoint_identity(tag: TAG, lm: LanguageModel, settings: DistillSettings) -> dict:
    """What must be equal for a checkpoint to be resumable."""
    provenance = Provenance.of(tag, lm.identity, settings.max_length)
    kept = {k: v for k, v in settings.as_dict().items() if k not in RESTARTED_SETTINGS}
    return {**provenance.run_key(), "settings": kept}


def pick_coreset(tag: TAG, lm: LanguageModel, features: torch.Tensor, settings: DistillSettings) -> DistillOutcome:
    """Real training nodes with their subgraph. Texts keep `settings.max_length` tokens, the
    length `features` were encoded with, so pool(LM(E)) of the stored token embeddings is those
    nodes' real features: they are taken from `features` rather than encoded again (a coreset of
    every training node would otherwise cost most of a whole encode)."""
    lm.require_inputs_embeds(f"a {settings.method} bundle (its features are read from its stored token embeddings)")
    nodes = select(METHODS[settings.method].picker, tag, features, class_allocation(tag, settings), settings.seed)
    embeddings, mask = initial_embeddings([tag.texts[i] for i in nodes], lm, settings.max_length, padding="longest")
    return DistillOutcome(
        embeddings=embeddings,
        attention_mask=mask,
        adjacency=induced_adjacency(tag, nodes),
        labels=tag.labels[nodes],
        soft_labels=None,
        features=features[nodes].float().cpu(),
        seed_nodes=nodes,
        best_step=0,
        best_val_accuracy=float("nan"),
    )


def distillation_curve(history: list[dict]) -> list[dict]:
    """One point per validation: the step it validated, its accuracy, and the mean training
    loss over the steps since the previous point (one step's loss is a noisy minibatch value).
    History entries carry the loss and validation of the state before their step's update."""
    curve, losses = [], []
    for entry in history:
        if entry["loss"] is not None:  # none at a validation that stopped the run (no update followed)
            losses.append(entry["loss"])
        if entry["val_accuracy"] is not None:
            loss = round(sum(losses) / len(losses), 6) if losses else None
            curve.append({"step": entry["step"] - 1, "val_accuracy": round(entry["val_accuracy"], 6), "loss": loss})
            losses = []
    return curve


def make_bundle(
    tag: TAG, lm: LanguageModel, settings: DistillSettings, outcome: DistillOutcome, made: dict | None = None, license: str = DEFAULT_LICENSE
) -> Bundle:
    """The bundle of a run; `made` records how (command, device, versions, time, memory)."""
    if METHODS[settings.method].learns:
        hyperparameters = {k: v for k, v in settings.as_dict().items() if k not in ("method", "ratio", "seed")}
        hyperparameters["run"] = {
            "best_step": outcome.best_step,
            "val_accuracy": round(outcome.best_val_accuracy, 6),  # scored as `select` says
            "seconds": round(outcome.seconds, 3),
            "resumed_from_step": outcome.resumed_from_step,
            "stopped_at": outcome.stopped_at,
            "seed_nodes": outcome.seed_nodes.tolist(),
        }
        if outcome.warm_start is not None:
            hyperparameters["run"]["warm_start"] = outcome.warm_start
    else:  # a coreset: only these settings mean anything
        hyperparameters = {
            "size": settings.size, "allocation_power": settings.allocation_power, "min_class_nodes": settings.min_class_nodes,
            "max_length": settings.max_length,
            "nodes": outcome.seed_nodes.tolist(),
        }  # fmt: skip
    source = Provenance.of(tag, lm.identity, settings.max_length)
    return Bundle(
        token_embeddings=outcome.embeddings,
        attention_mask=outcome.attention_mask,
        adjacency=outcome.adjacency,
        labels=outcome.labels,
        features=outcome.features,
        soft_labels=outcome.soft_labels,
        dataset=DatasetInfo(
            name=source.dataset_name,
            content_hash=source.dataset_hash,
            num_nodes=source.num_nodes,
            num_classes=tag.num_classes,
            label_names=list(tag.label_names),
            split=source.split,
            num_train=int(tag.train_mask.sum()),
        ),
        lm=LMInfo(
            name=source.lm_name,
            hidden_size=source.hidden_size,
            tokenizer=lm.identity.tokenizer,
            weights_sha256=source.lm_weights_sha256,
            pooling=source.pooling,
            max_length=source.max_length,
            embedding_size=lm.embedding_size,
            revision=lm.identity.revision,
        ),
        distillation=DistillationInfo(
            method=settings.method,
            ratio=settings.ratio if settings.size is None else None,
            ratio_of="train_nodes",
            ratio_denominator=int(tag.train_mask.sum()),
            features_from_tokens=METHODS[settings.method].reads_texts,
            num_synthetic=int(outcome.labels.shape[0]),
            seed=settings.seed,
            settings=hyperparameters,
            curve=distillation_curve(outcome.history),
        ),
        made=made or {},
        license=license,
    )


def token_start(settings: DistillSettings) -> str:
    """What the bundle's token sequences started from: real training nodes' texts for a coreset,
    else the settings' `init`."""
    return settings.init if METHODS[settings.method].learns else "real nodes"


def record_exposure(bundle: Bundle, tag: TAG, lm: LanguageModel, settings: DistillSettings, out: Path) -> None:
    """Measure what `bundle` reveals of the real texts into its `privacy` entry, and refuse it when
    a node shares more than `max_text_overlap` of its 4-grams with them."""
    exposure = measure_exposure(bundle, lm, tag.texts)
    bundle.privacy = {"start": token_start(settings), **exposure.summary()}
    limit, worst = settings.max_text_overlap, exposure.worst
    if limit is not None and worst.ngram_overlap > limit:
        if distributed.rank() == 0:
            remove_checkpoint(out)
        raise TextOverlapError(
            f"refusing to write {out}: synthetic node {worst.node} (class {worst.label}) shares {worst.ngram_overlap:.0%} of its "
            f"word 4-grams with real texts, above --max-text-overlap {limit:g}; nothing was written"
            + (" (--init vocab starts from no real text)" if token_start(settings) == "texts" else "")
        )


def check_bundle_size(tag: TAG, lm: LanguageModel, settings: DistillSettings) -> None:
    """Refuse, before any work, a run whose bundle the writer would refuse: its tensors (the dense
    adjacency grows with the square of the synthetic nodes) over the format's limit. A coreset's
    texts keep up to `max_length` tokens, a learned set's `seq_len`."""
    n = sum(class_allocation(tag, settings))
    length = settings.seq_len if METHODS[settings.method].learns else settings.max_length
    planned = 4 * (n * length * lm.embedding_size + n * n + n * lm.identity.hidden_size + n * tag.num_classes) + 8 * (n * length + n)
    if planned > spec.MAX_TENSOR_BYTES:
        raise SettingsError(
            f"{n} synthetic nodes would make a bundle of about {planned / 2**30:.1f} GiB of tensors (the dense adjacency alone is "
            f"{4 * n * n / 2**30:.1f} GiB), over the format's {spec.MAX_TENSOR_BYTES / 2**30:.0f} GiB: use a smaller --ratio or --size"
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
    command: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> tuple[Bundle, DistillOutcome]:
    """Distil `tag` into the bundle `out`, checkpointing beside it as it goes. `real_features` are
    every real node's features from `lm` at `settings.max_length` tokens, what the bundle will be
    evaluated with: GCN selection trains on them and a coreset stores its nodes' rows. `command`
    (the command line, when there is one) and `license` go into the bundle's card."""
    out = Path(out)
    check_target(out, force)  # refuse now, not after a long run
    check_bundle_size(tag, lm, settings)
    if not METHODS[settings.method].learns:
        if resume:
            raise SettingsError(f"--resume applies to the kernel methods only ({settings.method} is picked in one go)")
        started = time.perf_counter()
        outcome = pick_coreset(tag, lm, real_features, settings)
        outcome.seconds = time.perf_counter() - started
    else:
        identity = checkpoint_identity(tag, lm, settings)
        distiller = Distiller.start(tag, lm, real_features, settings, device)
        if resume:
            distiller.load_state_dict(load_checkpoint(out, identity))

        def checkpoint(distiller: Distiller) -> None:
            if distributed.rank() == 0:  # every rank holds the same state
                save_checkpoint(out, distiller.state_dict(), identity)

        try:
            outcome = distill(distiller, on_step, on_checkpoint=checkpoint)
        except StopRequested:
            checkpoint(distiller)
            raise Interrupted(
                f"stopped after step {distiller.step} of {settings.steps}; checkpoint at {checkpoint_dir(out)}: "
                "run the same command with --resume to continue from it"
            ) from None
    made = {
        "command": command and portable_command(command), **environment(device), "seconds": round(outcome.seconds, 3), "peak_rss_mib": round(peak_rss_mib() or 0.0, 1),
        "phase_seconds": outcome.phase_seconds,
    }  # fmt: skip
    bundle = make_bundle(tag, lm, settings, outcome, made, license)
    started = time.perf_counter()
    record_exposure(bundle, tag, lm, settings, out)
    outcome.phase_seconds["privacy check"] = round(time.perf_counter() - started, 3)
    if distributed.rank() == 0:
        started = time.perf_counter()
        write_bundle(bundle, out, force=force)
        remove_checkpoint(out)
        outcome.phase_seconds["bundle write"] = round(time.perf_counter() - started, 3)
    return bundle, outcome
