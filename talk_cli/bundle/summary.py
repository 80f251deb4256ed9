"""Facts about a bundle for `talk inspect` (computed here, rendered by the CLI)."""

from __future__ import annotations

from typing import Any

import torch

from talk_cli.bundle.bundle import Bundle
from talk_cli.bundle.card import privacy_sentence
from talk_cli.bundle.describe import graph_stats, structure


def real_text(bundle: Bundle) -> str:
    """Whether the bundle holds real training text, as measured when it was made."""
    if bundle.privacy:
        return privacy_sentence(bundle.privacy, bundle.num_synthetic)
    if "nodes" in bundle.distillation.settings:  # a coreset made before format 1.3
        return "This bundle holds real training texts: its nodes are real training nodes, each stored with its own text."
    return "Not measured when it was made (format before 1.3): `talk inspect BUNDLE --privacy` measures what it reveals."


def summarize(bundle: Bundle) -> dict[str, Any]:
    counts = torch.bincount(bundle.labels, minlength=bundle.dataset.num_classes).tolist()
    stats = graph_stats(bundle.adjacency)
    return {
        "real_text": real_text(bundle),
        "format_version": bundle.format_version,
        "tool_version": bundle.tool_version,
        "created": bundle.created,
        "dataset": vars(bundle.dataset),
        "lm": vars(bundle.lm),
        "distillation": vars(bundle.distillation),
        "synthetic": {
            "num_nodes": bundle.num_synthetic,
            "sequence_length": int(bundle.token_embeddings.shape[1]),
            "hidden_size": int(bundle.token_embeddings.shape[2]),
            "soft_labels": bundle.soft_labels is not None,
            "class_counts": dict(zip(bundle.dataset.label_names, counts)),
            "edges": structure(bundle, stats["num_edges"]),
            **stats,
        },
        "evaluation": bundle.evaluation,
    }
