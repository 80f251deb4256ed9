"""Assemble a validated `TAG` from parsed parts (shared by every loader)."""

from __future__ import annotations

import torch

from talk_cli.data.split import SplitSpec, random_masks
from talk_cli.data.tag import TAG, content_hash, undirected_edge_index
from talk_cli.errors import DataError

Masks = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def check_training_classes(labels: torch.Tensor, train_mask: torch.Tensor, label_names: list[str], where: str) -> int:
    """Every class that has nodes must have a training node; returns how many classes have no node at all."""
    total = torch.bincount(labels, minlength=len(label_names))
    train = torch.bincount(labels[train_mask], minlength=len(label_names))
    for cls, (n_all, n_train) in enumerate(zip(total.tolist(), train.tolist())):
        if n_all > 0 and n_train == 0:
            raise DataError(
                f"{where}: class {cls} ({label_names[cls]!r}) has {n_all} node(s) but no training node; "
                "a classifier cannot learn it; change the split: another --split-seed or --split-fractions, or a split.json "
                "in the folder that puts one of its nodes in 'train'"
            )
    return int((total == 0).sum())


def build_tag(
    name: str,
    texts: list[str],
    labels: torch.Tensor,
    label_names: list[str],
    src: torch.Tensor,
    dst: torch.Tensor,
    split: SplitSpec,
    given_split: tuple[Masks, str] | None = None,
    where: str = "",
    surrogates_replaced: int = 0,
) -> TAG:
    """Symmetrise edges, apply the split (the given one, else `split`'s random one), validate, hash.
    `surrogates_replaced` counts texts the reader had to repair, for the notes."""
    edge_index, notes = undirected_edge_index(src, dst, len(texts))
    if given_split is not None:
        (train, val, test), description = given_split
    else:
        (train, val, test), description = random_masks(len(texts), split), split.describe()
    notes["classes_without_nodes"] = check_training_classes(labels, train, label_names, f"{where or name} ({description})")
    notes["empty_texts"] = sum(1 for text in texts if not text.strip())
    notes["texts_with_unpaired_surrogates"] = surrogates_replaced
    return TAG(
        name=name,
        texts=texts,
        labels=labels,
        label_names=label_names,
        edge_index=edge_index,
        train_mask=train,
        val_mask=val,
        test_mask=test,
        split_description=description,
        content_hash=content_hash(texts, labels, label_names, edge_index),
        notes=notes,
    )
