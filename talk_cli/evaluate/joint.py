"""The `joint` protocol (the paper's setting): the LM is fine-tuned together with the GNN on the
bundle, through `inputs_embeds`; then every real text is re-encoded with the fine-tuned LM and
the real graph is classified by the jointly trained GNN.

Re-encoding the real graph is the expensive part, so it happens once per run, after training:
this protocol trains for a fixed number of epochs and does no per-epoch model selection.
"""

from __future__ import annotations

import copy
import time

import torch

from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.distill.methods import METHODS
from talk_cli.encode.encoder import EncodeSettings, encode_texts
from talk_cli.encode.lm import LanguageModel, encode_embeddings
from talk_cli.errors import SettingsError
from talk_cli.evaluate.gnn import bundle_training
from talk_cli.evaluate.models import build_model
from talk_cli.evaluate.train import EvalSettings, RealNodes, Summary, accuracy, classification_loss, scored_run

LM_LEARNING_RATE = 2e-5  # the usual fine-tuning rate for BERT-sized encoders


def evaluate_joint(
    bundle: Bundle, tag: TAG, lm: LanguageModel, settings: EvalSettings, max_length: int, device: torch.device, on_epoch=None
) -> Summary:
    if not METHODS[bundle.distillation.method].reads_texts:
        raise SettingsError(
            f"the joint protocol needs token embeddings that produce the features; {bundle.distillation.method} bundles have none"
        )
    lm.require_inputs_embeds("the joint protocol")
    pretrained = copy.deepcopy(lm.model.state_dict())
    embeddings, mask = bundle.token_embeddings.to(device), bundle.attention_mask.to(device)
    # Both graphs' structures are fixed: prepare them once; only the features change per run and epoch.
    synthetic = bundle_training(bundle, torch.empty(bundle.num_synthetic, 0), device)
    real = RealNodes.of(tag, torch.empty(tag.num_nodes, 0), device)
    results = []
    for run in range(settings.runs):
        torch.manual_seed(settings.seed + run)
        lm.model.load_state_dict(pretrained)
        lm.model.to(device).train()
        lm.model.requires_grad_(True)
        gnn = build_model(settings.architecture, lm.identity.hidden_size, tag.num_classes, settings.hidden, settings.dropout).to(device)
        optimizer = torch.optim.Adam(
            [{"params": lm.model.parameters(), "lr": LM_LEARNING_RATE}, {"params": gnn.parameters(), "lr": settings.lr}],
            weight_decay=settings.weight_decay,
        )
        started = time.perf_counter()
        for _ in range(settings.epochs):
            gnn.train()
            logits = gnn(synthetic.graph.with_features(encode_embeddings(lm, embeddings, mask)))
            loss = classification_loss(logits, synthetic.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if on_epoch:
                on_epoch(1)
        lm.model.eval()
        lm.model.requires_grad_(False)
        encoded, _ = encode_texts(tag.texts, lm, EncodeSettings(max_length=max_length), device)
        gnn.eval()
        with torch.no_grad():
            predicted = gnn(real.graph.with_features(encoded.to(device))).argmax(dim=1)
        val = accuracy(predicted, real.labels, real.val_rows)
        results.append(scored_run(predicted[real.test_rows], real, val, settings.epochs, time.perf_counter() - started))
    lm.model.load_state_dict(pretrained)
    return Summary(results)
