"""The `joint` protocol (the paper's setting): the LM is fine-tuned together with the GNN on the
bundle, through `inputs_embeds`; then every real text is re-encoded with the fine-tuned LM and
the real graph is classified by the jointly trained GNN.

Re-encoding the real graph is the expensive part, so it happens once per run, after training:
this protocol trains for a fixed number of epochs and does no per-epoch model selection.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from talk_cli.bundle import Bundle
from talk_cli.data.tag import TAG
from talk_cli.encode.lm import encode_embeddings
from talk_cli.encode.encoder import EncodeSettings, encode_texts
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError
from talk_cli.graph import Graph
from talk_cli.evaluate.models import build_model
from talk_cli.evaluate.protocol import bundle_targets, split_rows
from talk_cli.evaluate.train import EvalSettings, RunResult, Summary, soft_cross_entropy

LM_LEARNING_RATE = 2e-5  # the usual fine-tuning rate for BERT-sized encoders


def evaluate_joint(
    bundle: Bundle, tag: TAG, lm: LanguageModel, settings: EvalSettings, max_length: int, device: torch.device, on_epoch=None
) -> Summary:
    if bundle.distillation.method == "kernel-features":
        raise SettingsError("the joint protocol needs token embeddings that produce the features; kernel-features bundles have none")
    pretrained = copy.deepcopy(lm.model.state_dict())
    embeddings, mask = bundle.token_embeddings.to(device), bundle.attention_mask.to(device)
    edge_index, edge_weight = (t.to(device) for t in bundle.edges())
    # Both graphs' structures are fixed: prepare them once; only the features change per run and epoch.
    synthetic = Graph.from_edges(torch.empty(bundle.num_synthetic, 0, device=device), edge_index, edge_weight)
    real_structure = Graph.from_edges(torch.empty(tag.num_nodes, 0, device=device), tag.edge_index.to(device))
    targets = bundle_targets(bundle).to(device)
    val_rows, test_rows = split_rows(tag, device)
    labels = tag.labels.to(device)
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
            logits = gnn(dataclasses.replace(synthetic, x=encode_embeddings(lm, embeddings, mask)))
            loss = soft_cross_entropy(logits, targets) if targets.is_floating_point() else F.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if on_epoch:
                on_epoch(1)
        lm.model.eval()
        lm.model.requires_grad_(False)
        real, _ = encode_texts(tag.texts, lm, EncodeSettings(max_length=max_length), device)
        gnn.eval()
        with torch.no_grad():
            predicted = gnn(dataclasses.replace(real_structure, x=real.to(device))).argmax(dim=1)
        truth = labels[test_rows].cpu()
        results.append(
            RunResult(
                test_accuracy=float((predicted[test_rows].cpu() == truth).float().mean()),
                test_macro_f1=float(f1_score(truth.numpy(), predicted[test_rows].cpu().numpy(), average="macro")),
                val_accuracy=float((predicted[val_rows] == labels[val_rows]).float().mean()),
                best_epoch=settings.epochs,
                seconds=time.perf_counter() - started,
            )
        )
    lm.model.load_state_dict(pretrained)
    return Summary(results)
