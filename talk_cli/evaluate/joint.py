"""The joint protocol (the paper's setting) and its full-data reference: the LM is fine-tuned
together with the GNN, the LM's gradient flowing through the GNN's loss into the texts it encodes.

- On a bundle: the synthetic texts are the bundle's token embeddings (through `inputs_embeds`);
  every epoch is one step on the whole synthetic graph.
- The reference (`--full`): every real training node, in batches of target nodes. Each step
  encodes the batch's own texts with the LM (with gradient) and runs the GNN on the batch's
  K-hop neighbourhood (K = the GNN's propagation steps), where every other node's features come
  from a table that starts as the cached pretrained-LM features and is overwritten with each
  batch's fresh features as training goes (historical features). docs/evaluate.md states what
  this approximates.

Both first fit the GNN alone on the pretrained LM's features (`probe_epochs`, validated on the
cached real features) and fine-tune LM + GNN from its best state, as in "linear probing, then
fine-tuning" (Kumar et al., 2022): a random GNN's first gradients would otherwise pull the LM
away from features that already serve. Both check the LM every `eval_every` epochs: every real
text is re-encoded with it and, by default (`refit`), a fresh GNN is fitted on the training
side's features from the same LM, as the probe was, and classifies the real graph. The best check
on the validation nodes is the one scored, the probed GNN on the pretrained LM (epoch 0) included.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch

from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.encode.encoder import encode_texts
from talk_cli.encode.lm import LanguageModel, encode_embeddings, encode_ids
from talk_cli.encode.lora import trainable_copy, trained_parameters
from talk_cli.encode.settings import EncodeSettings
from talk_cli.errors import SettingsError
from talk_cli.evaluate.gnn import bundle_training, full_training
from talk_cli.gnn.models import RECEPTIVE_HOPS, build_model
from talk_cli.gnn.settings import EvalSettings
from talk_cli.gnn.train import Choice, RealNodes, Summary, Training, classification_loss, probe, selected_run, tokens_step


class JointRuns:
    """Fresh LM + GNN pairs for successive runs. Each run fine-tunes its own copy of the pretrained
    LM (every weight, or LoRA adapters: `lora_rank`); the caller's LM is never changed."""

    def __init__(self, lm: LanguageModel, num_classes: int, settings: EvalSettings, device: torch.device):
        self.lm, self.num_classes, self.settings, self.device = lm, num_classes, settings, device

    def start(self, run: int, probe_training: Training, real: RealNodes) -> tuple[LanguageModel, torch.nn.Module, torch.optim.Optimizer, Choice]:
        """A trainable copy of the pretrained LM and a GNN first fitted alone on `probe_training`'s
        pretrained-LM features (`probe_epochs`), ready to be fine-tuned together; and the probed
        GNN's validation, the run's epoch-0 candidate. `real` holds the cached pretrained-LM
        features, which are what re-encoding with the LM would give at this point."""
        settings = self.settings
        torch.manual_seed(settings.seed + run)
        tuned = trainable_copy(self.lm, self.device, settings.lora_rank, settings.lora_alpha, settings.lora_dropout)
        gnn = build_model(settings.architecture, self.lm.identity.hidden_size, self.num_classes, settings.hidden, settings.dropout)
        gnn = gnn.to(self.device)
        probed = probe(gnn, probe_training, real, settings)
        optimizer = torch.optim.Adam(
            [{"params": trained_parameters(tuned), "lr": settings.lm_lr}, {"params": gnn.parameters(), "lr": settings.joint_gnn_lr}],
            weight_decay=settings.weight_decay,
        )
        return tuned, gnn, optimizer, probed

    def check(self, run: int, tuned: LanguageModel, gnn: torch.nn.Module, tag: TAG, real: RealNodes, training_on, max_length: int) -> torch.Tensor:
        """Every real node classified with the fine-tuned LM `tuned`, every text re-encoded. With
        `refit`, by a fresh GNN fitted as the probe was (seeded alike, validated every epoch, kept at
        its best) on `training_on(current real features)`; otherwise by `gnn`, the one fine-tuned
        with the LM.

        Why refit: the GNN fine-tuned alongside the LM learnt from features of the LM as it was
        step by step (and, on the full data, from historical features of its neighbours), while a
        check gives it every feature from the latest LM; on the full data of both shared datasets it
        classified worse than a GNN fitted on those features (docs/evaluate.md, "Refitted checks")."""
        tuned.model.eval()
        encoded, _ = encode_texts(tag.texts, tuned, EncodeSettings(max_length=max_length), self.device)
        current = replace(real, graph=real.graph.with_features(encoded.to(self.device)))
        if not self.settings.refits:
            gnn.eval()
            with torch.no_grad():
                return gnn(current.graph).argmax(dim=1)
        # The refit draws its own initialisation without moving the fine-tuning's random stream.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.settings.seed + run)
            fresh = build_model(self.settings.architecture, self.lm.identity.hidden_size, self.num_classes, self.settings.hidden, self.settings.dropout)
            with torch.no_grad():
                training = training_on(current)
            return probe(fresh.to(self.device), training, current, self.settings)[2]


def encode_with_grad(lm: LanguageModel, texts: list[str], max_length: int, device: torch.device) -> torch.Tensor:
    """Pooled LM features of `texts`, differentiable in the LM's weights."""
    tokens = lm.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return encode_ids(lm, tokens["input_ids"].to(device), tokens["attention_mask"].to(device))


def evaluate_joint(
    bundle: Bundle,
    tag: TAG,
    lm: LanguageModel,
    features: torch.Tensor,
    settings: EvalSettings,
    max_length: int,
    device: torch.device,
    on_epoch=None,
) -> Summary:
    """LM + GNN fine-tuned on the bundle; `features` are the real texts' cached pretrained-LM
    features (the probe's validation)."""
    if not bundle.distillation.features_from_tokens:
        raise SettingsError(f"the joint protocol needs token embeddings that produce the features; {bundle.distillation.method} bundles have none")
    lm.require_inputs_embeds("the joint protocol")
    runs = JointRuns(lm, tag.num_classes, settings, device)
    embeddings, mask = bundle.token_embeddings.to(device), bundle.attention_mask.to(device)
    # Both graphs' structures are fixed: prepare them once; only the features change.
    synthetic = bundle_training(bundle, bundle.features, device)
    real = RealNodes.of(tag, features, device)
    results = []
    for run in range(settings.runs):
        tuned, gnn, optimizer, probed = runs.start(run, synthetic, real)

        def train_epoch() -> None:
            tuned.model.train()
            gnn.train()
            tokens_step(tuned, gnn, synthetic, embeddings, mask, optimizer)

        def synthetic_on(_current: RealNodes) -> Training:
            return bundle_training(bundle, encode_embeddings(tuned, embeddings, mask), device)

        predict = partial(runs.check, run, tuned, gnn, tag, real, synthetic_on, max_length)
        results.append(selected_run(train_epoch, predict, real, settings, on_epoch, start=probed))
    return Summary(results)


def evaluate_joint_full(
    tag: TAG, lm: LanguageModel, features: torch.Tensor, settings: EvalSettings, max_length: int, device: torch.device, on_epoch=None
) -> Summary:
    """The joint full-data reference: LM + GNN trained on every real training node."""
    runs = JointRuns(lm, tag.num_classes, settings, device)
    real = RealNodes.of(tag, features, device)
    probe_training = full_training(tag, real)
    train = probe_training.rows.cpu()  # shuffled into batches by a CPU generator
    hops = RECEPTIVE_HOPS[settings.architecture]
    results = []
    for run in range(settings.runs):
        tuned, gnn, optimizer, probed = runs.start(run, probe_training, real)
        table = features.to(device).clone()  # historical features: pretrained, then each batch's latest
        order = torch.Generator().manual_seed(settings.seed + run)

        def train_epoch() -> None:
            tuned.model.train()
            gnn.train()
            for batch in train[torch.randperm(len(train), generator=order)].split(settings.batch_size):
                batch = batch.to(device)
                subset, neighbourhood = real.graph.neighbourhood(batch, hops)  # its features are set just below
                fresh = encode_with_grad(tuned, [tag.texts[i] for i in batch.tolist()], max_length, device)
                x = torch.cat([fresh, table[subset[len(batch) :]]])  # the batch comes first in `subset`
                logits = gnn(neighbourhood.with_features(x))[: len(batch)]
                optimizer.zero_grad()
                classification_loss(logits, real.labels[batch]).backward()
                optimizer.step()
                table[batch] = fresh.detach()
                if on_epoch:  # an epoch over a large graph is long: its batches report as fractions of it
                    on_epoch(len(batch) / len(train))

        predict = partial(runs.check, run, tuned, gnn, tag, real, partial(full_training, tag), max_length)
        results.append(selected_run(train_epoch, predict, real, settings, start=probed))
    return Summary(results)
