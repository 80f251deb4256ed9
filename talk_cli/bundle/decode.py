"""Read synthetic "texts": the vocabulary token nearest to each learned input embedding."""

from __future__ import annotations

import torch

from talk_cli.bundle.bundle import Bundle
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import ModelError


def nearest_tokens(bundle: Bundle, lm: LanguageModel) -> list[list[str]]:
    """For each synthetic node, the tokens (by cosine similarity) of its attended positions."""
    table = lm.embeddings.weight.detach().float()
    if table.shape[1] != bundle.token_embeddings.shape[2]:
        raise ModelError(
            f"the LM {lm.identity.name!r} has {table.shape[1]}-dimensional token embeddings, "
            f"the bundle's are {bundle.token_embeddings.shape[2]}-dimensional: decode with the LM it was made with"
        )
    table = torch.nn.functional.normalize(table, dim=1)
    decoded = []
    for sequence, mask in zip(bundle.token_embeddings, bundle.attention_mask):
        rows = torch.nn.functional.normalize(sequence[mask.bool()].float(), dim=1)
        ids = (rows @ table.T).argmax(dim=1).tolist()
        decoded.append(lm.tokenizer.convert_ids_to_tokens(ids))
    return decoded


def decoded_rows(bundle: Bundle, lm: LanguageModel) -> list[dict]:
    """One row per synthetic node: its index, class name and nearest tokens."""
    names = bundle.dataset.label_names
    return [
        {"node": node, "class": names[int(label)], "tokens": " ".join(tokens)}
        for node, (label, tokens) in enumerate(zip(bundle.labels, nearest_tokens(bundle, lm)))
    ]
