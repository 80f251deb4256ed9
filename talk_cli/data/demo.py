"""The built-in `demo` TAG: a small, deterministic citation-like graph.

It exists so that every command runs on a fresh machine with no data. Each class has
its own topic vocabulary; every abstract mixes topic words with shared research jargon
and some words from other topics, so classes are learnable but not trivially so.
Edges are homophilous: most of a node's links stay inside its class.
"""

from __future__ import annotations

import random

import torch

from talk_cli.data.build import build_tag
from talk_cli.data.split import SplitSpec
from talk_cli.data.tag import TAG

TOPICS: dict[str, list[str]] = {
    "astronomy": "galaxy star telescope orbit planet nebula redshift supernova comet spectrum cosmic lunar solar stellar quasar".split(),
    "cooking": "recipe flavour oven spice dough sauce roast ferment kitchen grain broth pastry herb simmer texture".split(),
    "finance": "market equity bond interest portfolio credit liquidity inflation dividend asset risk hedge yield currency banking".split(),
    "medicine": "patient clinical tumour vaccine dosage therapy cardiac infection diagnosis immune surgery cohort lesion symptom trial".split(),
    "music": "melody harmony rhythm chord tempo orchestra pitch timbre composer guitar score concert tonal vocal jazz".split(),
}
JARGON = "we propose a novel method model analysis study results show approach data evaluate framework improved robust efficient".split()
TEMPLATES = (
    "We study {a} and {b} in the context of {c}.",
    "Our {j} links {a} to {b}.",
    "Results on {a} show that {b} improves {c}.",
    "This {j} revisits {a} with a focus on {b} and {c}.",
    "A new {j} for {a} is proposed.",
)


def demo_text(rng: random.Random, topic: list[str], others: list[list[str]], off_topic: float) -> str:
    def word() -> str:
        pool = rng.choice(others) if rng.random() < off_topic else topic
        return rng.choice(pool)

    title = f"{word().capitalize()} {word()} and {word()}"
    sentences = [rng.choice(TEMPLATES).format(a=word(), b=word(), c=word(), j=rng.choice(JARGON)) for _ in range(rng.randint(3, 5))]
    return title + "\n" + " ".join(sentences)


def make_demo_tag(
    nodes_per_class: int = 60,
    degree: int = 3,
    homophily: float = 0.8,
    off_topic: float = 0.3,
    seed: int = 0,
    split: SplitSpec = SplitSpec(),
) -> TAG:
    """Generate the demo TAG; the same arguments always give the same graph (and hash)."""
    rng = random.Random(seed)
    label_names = list(TOPICS)
    vocabularies = list(TOPICS.values())
    labels = [cls for cls in range(len(label_names)) for _ in range(nodes_per_class)]
    rng.shuffle(labels)
    texts = [demo_text(rng, vocabularies[cls], vocabularies[:cls] + vocabularies[cls + 1 :], off_topic) for cls in labels]
    members: dict[int, list[int]] = {cls: [] for cls in range(len(label_names))}
    for node, cls in enumerate(labels):
        members[cls].append(node)
    src, dst = [], []
    for node, cls in enumerate(labels):
        for _ in range(degree):
            pool = members[cls] if rng.random() < homophily else range(len(labels))
            src.append(node)
            dst.append(rng.choice(pool))
    return build_tag(
        "demo",
        texts,
        torch.tensor(labels, dtype=torch.int64),
        label_names,
        torch.tensor(src, dtype=torch.int64),
        torch.tensor(dst, dtype=torch.int64),
        split,
    )
