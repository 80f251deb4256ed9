"""What a bundle reveals of the real texts (docs/privacy.md): each synthetic node's token
embeddings decoded to the nearest vocabulary tokens and compared with every real text.

Three measures per node:
- `ngram_overlap`: the share of the decoded text's word 4-grams found verbatim in any real text
  (0 for a node that decodes to fewer than 4 words);
- `position_match`: the share of its non-special positions whose decoded token equals the token at
  the same position of the closest real text (`closest_node`), tokenised as a synthetic text is;
- `token_distance`: the median, over its positions, of the distance to the nearest vocabulary token
  divided by the typical spacing of the vocabulary (the median distance from a token to its nearest
  other token). Near 0, each position sits on one token and decoding reads it exactly.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from talk_cli.bundle.bundle import Bundle
from talk_cli.bundle.decode import attended_rows, check_embedding_size, nearest_token_ids
from talk_cli.encode.lm import LanguageModel

NGRAM = 4
# A node whose decoded 4-grams are this share or more verbatim in real texts counts as holding
# real text: the bar an independent check holds a private bundle to (docs/privacy.md).
TEXT_OVERLAP_LIMIT = 0.25
SPACING_SAMPLE = 2048  # vocabulary tokens whose nearest neighbour sets the spacing (a seeded sample)
COMPARISONS_AT_ONCE = 1 << 24  # (synthetic node, real text, position) triples compared at once (bounds memory)
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class NodeExposure:
    node: int
    label: str
    decoded: str
    ngram_overlap: float
    position_match: float
    closest_node: int
    token_distance: float


@dataclass(frozen=True)
class Exposure:
    """Per-node measures and their summary (what the manifest's `privacy` entry records)."""

    nodes: list[NodeExposure]
    num_texts: int

    @property
    def worst(self) -> NodeExposure:
        return max(self.nodes, key=lambda n: (n.ngram_overlap, n.position_match))

    def summary(self) -> dict:
        overlaps = [n.ngram_overlap for n in self.nodes]
        worst = self.worst
        return {
            "compared_with": f"every text of the source dataset ({self.num_texts})",
            "ngram": NGRAM,
            "mean_ngram_overlap": round(sum(overlaps) / len(overlaps), 4),
            "max_ngram_overlap": round(worst.ngram_overlap, 4),
            "worst_node": worst.node,
            "nodes_holding_text": sum(o >= TEXT_OVERLAP_LIMIT for o in overlaps),
            "mean_position_match": round(sum(n.position_match for n in self.nodes) / len(self.nodes), 4),
            "median_token_distance": round(float(torch.tensor([n.token_distance for n in self.nodes]).nanmedian()), 4),
        }

    def line(self) -> str:
        summary = self.summary()
        return (
            f"privacy: {summary['nodes_holding_text']} of {len(self.nodes)} synthetic nodes read back real text (4-gram overlap >= "
            f"{TEXT_OVERLAP_LIMIT:.0%}); mean 4-gram overlap {summary['mean_ngram_overlap']:.1%}, worst node {summary['worst_node']} at "
            f"{summary['max_ngram_overlap']:.1%}; mean position match {summary['mean_position_match']:.1%}; median token distance "
            f"{summary['median_token_distance']:.2f} vocabulary spacings; compared with {self.num_texts} real texts"
        )

    def as_dict(self) -> dict:
        return {"summary": self.summary(), "line": self.line(), "nodes": [dataclasses.asdict(node) for node in self.nodes]}


def words(text: str) -> list[str]:
    """Lower-case words without accents: decoded tokens of an uncased vocabulary lose both."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return WORD.findall(plain.lower())


def ngrams(tokens: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def found_ngrams(wanted: set[tuple[str, ...]], texts: Iterable[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    """Which of `wanted` occur in any of `texts`: one pass, holding only the wanted set, so a large
    corpus is never held as n-grams."""
    found: set[tuple[str, ...]] = set()
    for text in texts:
        found |= wanted & ngrams(words(text), n)
        if len(found) == len(wanted):
            break
    return found


def token_spacing(table: torch.Tensor) -> float:
    """The vocabulary's typical spacing: the median distance from a token to its nearest other
    token, over a seeded sample of tokens."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randperm(table.shape[0], generator=generator)[:SPACING_SAMPLE]
    distances = torch.cdist(table[sample], table)
    distances[torch.arange(len(sample)), sample] = float("inf")
    return float(distances.min(dim=1).values.median())


def measure_exposure(bundle: Bundle, lm: LanguageModel, texts: list[str]) -> Exposure:
    """Decode every synthetic node with `lm` and compare it with `texts`, the real texts."""
    check_embedding_size(bundle, lm)
    table = lm.embeddings.weight.detach().float().cpu()
    spacing = token_spacing(table)
    rows, counts = attended_rows(bundle)
    ids, nearest = nearest_token_ids(rows, table)
    nearest = nearest / spacing
    keep = ~torch.isin(ids, torch.tensor(sorted(set(lm.tokenizer.all_special_ids)), dtype=torch.long))
    length = bundle.token_embeddings.shape[1]
    decoded_ids = torch.full((len(counts), length), -1, dtype=torch.long)  # attended positions first, as the mask holds them
    kept = torch.zeros(len(counts), length, dtype=torch.bool)
    distances = []
    for node, (node_ids, node_keep, node_nearest) in enumerate(zip(ids.split(counts), keep.split(counts), nearest.split(counts))):
        positions = torch.nonzero(bundle.attention_mask[node].bool()).flatten()
        decoded_ids[node, positions], kept[node, positions] = node_ids, node_keep
        distances.append(float(node_nearest[node_keep].median()) if node_keep.any() else float("nan"))

    decoded = [lm.tokenizer.decode(ids[keep].tolist()) for ids, keep in zip(decoded_ids, kept)]
    grams = [ngrams(words(text)) for text in decoded]
    found = found_ngrams(set().union(*grams), texts)

    best_match = torch.zeros(len(decoded))
    closest = torch.zeros(len(decoded), dtype=torch.long)
    positions = kept.sum(dim=1).clamp(min=1)
    chunk = max(1, COMPARISONS_AT_ONCE // (len(decoded) * length))
    for start in range(0, len(texts), chunk):
        real = lm.tokenizer(texts[start : start + chunk], truncation=True, max_length=length, padding="max_length", return_tensors="pt")["input_ids"]
        same = ((decoded_ids[:, None, :] == real[None, :, :]) & kept[:, None, :]).sum(dim=2) / positions[:, None]
        share, where = same.max(dim=1)
        better = share > best_match
        best_match[better], closest[better] = share[better], where[better] + start

    names = bundle.dataset.label_names
    nodes = [
        NodeExposure(
            node=i,
            label=names[int(bundle.labels[i])],
            decoded=decoded[i],
            ngram_overlap=len(grams[i] & found) / len(grams[i]) if grams[i] else 0.0,
            position_match=float(best_match[i]),
            closest_node=int(closest[i]),
            token_distance=distances[i],
        )
        for i in range(len(decoded))
    ]
    return Exposure(nodes, len(texts))
