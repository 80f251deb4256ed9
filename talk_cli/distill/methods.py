"""The registry of `--method`s: what each one learns or picks. The CLI, the pipeline and the
bundle writer read it instead of comparing method names. It imports no torch (the learners and
pickers import their modules when called), so the CLI can list the methods without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from talk_cli.distill.representation import FreeFeatures, Representation, TokenSequences
    from talk_cli.encode.lm import LanguageModel

# (seed token embeddings, their mask, the seed nodes' real features, LM, chunk) -> representation
Learner: TypeAlias = "Callable[[torch.Tensor, torch.Tensor, torch.Tensor, LanguageModel, int], Representation]"
# (points of one class, how many, generator) -> positions of the chosen points
Picker: TypeAlias = "Callable[[torch.Tensor, int, torch.Generator], list[int]]"


@dataclass(frozen=True)
class Method:
    name: str
    learner: Learner | None = None  # kernel methods: the outer loop learns this representation
    picker: Picker | None = None  # coresets: real training nodes chosen per class
    reads_texts: bool = True  # its features come out of the LM from the stored token embeddings

    @property
    def learns(self) -> bool:
        """A learned synthetic set, selected by validation accuracy; else a coreset picked in one go."""
        return self.learner is not None


def learn_token_sequences(embeddings, mask, seed_features, lm, chunk) -> TokenSequences:
    from talk_cli.distill.representation import TokenSequences

    return TokenSequences(embeddings.clone(), mask, lm, chunk)  # learnt in place: the shared start stays as it was


def learn_free_features(embeddings, mask, seed_features, lm, chunk) -> FreeFeatures:
    from talk_cli.distill.representation import FreeFeatures

    return FreeFeatures(seed_features.clone(), embeddings, mask)


def coreset_picker(name: str) -> Picker:
    """The picker `name` of distill/coreset.py."""

    def pick(points: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
        from talk_cli.distill import coreset

        return getattr(coreset, name)(points, k, generator)

    return pick


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("talk", learner=learn_token_sequences),  # token-embedding sequences read through the LM
        Method("kernel-features", learner=learn_free_features, reads_texts=False),  # the same loop, free feature vectors
        Method("random", picker=coreset_picker("uniform")),  # coresets: real training nodes per class
        Method("herding", picker=coreset_picker("herding")),
        Method("kcenter", picker=coreset_picker("kcenter")),
    )
}
