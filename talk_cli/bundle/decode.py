"""Read synthetic "texts": the vocabulary token nearest to each learned input embedding."""

from __future__ import annotations

import torch

from talk_cli.bundle.bundle import Bundle
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import ModelError


def check_embedding_size(bundle: Bundle, lm: LanguageModel) -> None:
    width = lm.embeddings.weight.shape[1]
    if width != bundle.token_embeddings.shape[2]:
        raise ModelError(
            f"the LM {lm.identity.name!r} has {width}-dimensional token embeddings, "
            f"the bundle's are {bundle.token_embeddings.shape[2]}-dimensional: decode with the LM it was made with"
        )


ROWS_AT_ONCE = 4096  # embedding rows compared with the whole vocabulary at once (bounds memory)


def nearest_token_ids(rows: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of `rows`, the id of the vocabulary row of `table` nearest by cosine similarity
    (what decoding reads), and the Euclidean distance to the row nearest by distance; both from
    one product with the table."""
    table_norms = table.norm(dim=1)
    ids, distances = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0)]
    for part in rows.split(ROWS_AT_ONCE):
        product = part @ table.T
        ids.append((product / table_norms.clamp(min=1e-12)).argmax(dim=1))  # a row's own norm does not change its argmax
        squared = part.pow(2).sum(dim=1, keepdim=True) + table_norms.pow(2) - 2 * product
        distances.append(squared.min(dim=1).values.clamp(min=0).sqrt())
    return torch.cat(ids), torch.cat(distances)


def attended_rows(bundle: Bundle) -> tuple[torch.Tensor, list[int]]:
    """Every synthetic node's attended token embeddings, stacked, and how many each node has."""
    mask = bundle.attention_mask.bool()
    return bundle.token_embeddings[mask].float(), mask.sum(dim=1).tolist()


def nearest_tokens(bundle: Bundle, lm: LanguageModel) -> list[list[str]]:
    """For each synthetic node, the tokens (by cosine similarity) of its attended positions."""
    check_embedding_size(bundle, lm)
    rows, counts = attended_rows(bundle)
    ids, _ = nearest_token_ids(rows, lm.embeddings.weight.detach().float().cpu())
    return [lm.tokenizer.convert_ids_to_tokens(part.tolist()) for part in ids.split(counts)]


def decoded_rows(bundle: Bundle, lm: LanguageModel) -> list[dict]:
    """One row per synthetic node: its index, class name and nearest tokens."""
    names = bundle.dataset.label_names
    return [
        {"node": node, "class": names[int(label)], "tokens": " ".join(tokens)}
        for node, (label, tokens) in enumerate(zip(bundle.labels, nearest_tokens(bundle, lm)))
    ]
