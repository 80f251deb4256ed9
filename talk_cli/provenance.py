"""What an artefact was made from: the dataset (content and split), the LM (its weights) and
how node texts were read (tokens per text, pooling). Every derived artefact is keyed by it: the
features cache, a distillation checkpoint, the cached full-data reference, and a bundle, whose
manifest records it so that evaluation can tell whether it is looking at the same data."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talk_cli.bundle import Bundle
    from talk_cli.data.tag import TAG
    from talk_cli.encode.lm import LMIdentity


@dataclass(frozen=True)
class Provenance:
    dataset_name: str
    dataset_hash: str
    num_nodes: int
    split: str
    lm_name: str
    lm_weights_sha256: str
    hidden_size: int
    max_length: int
    pooling: str  # how token states became one feature (talk_cli.encode.lm.POOLINGS)

    @classmethod
    def of(cls, tag: TAG, lm: LMIdentity, max_length: int) -> Provenance:
        return cls(tag.name, tag.content_hash, tag.num_nodes, tag.split_description, lm.name, lm.weights_sha256, lm.hidden_size, max_length, lm.pooling)

    @classmethod
    def of_bundle(cls, bundle: Bundle) -> Provenance:
        data, lm = bundle.dataset, bundle.lm
        return cls(data.name, data.content_hash, data.num_nodes, data.split, lm.name, lm.weights_sha256, lm.hidden_size, lm.max_length, lm.pooling)

    def run_key(self) -> dict[str, Any]:
        """What a distillation or an evaluation depends on besides its own settings (the split
        included: it decides the training nodes)."""
        return {
            "dataset": self.dataset_name,
            "dataset_hash": self.dataset_hash,
            "split": self.split,
            "lm_weights_sha256": self.lm_weights_sha256,
            "max_length": self.max_length,
            "pooling": self.pooling,
        }

    def features_key(self, dtype: str) -> dict[str, Any]:
        """What the encoded features depend on (the split excluded: every node is encoded),
        as the features cache file records it."""
        return {
            "format": "talk-features",
            "version": 1,
            "dataset": {"name": self.dataset_name, "content_hash": self.dataset_hash, "num_nodes": self.num_nodes},
            # The weights decide the features, not the LM's name (a folder's name may change).
            "model": {"weights_sha256": self.lm_weights_sha256, "hidden_size": self.hidden_size},
            "model_name": self.lm_name,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dtype": dtype,
            "shape": [self.num_nodes, self.hidden_size],
        }

    def mismatches(self, given: Provenance) -> list[str]:
        """Ways in which the artefact with this provenance was not made from `given`'s data and LM."""
        problems = []
        if self.dataset_hash != given.dataset_hash:
            problems.append(
                f"dataset hash differs (bundle: {self.dataset_name} {self.dataset_hash[:12]}, given: {given.dataset_name} {given.dataset_hash[:12]})"
            )
        if self.split != given.split:
            problems.append(f"split differs (bundle: {self.split!r}, given: {given.split!r}); its test nodes may have been training nodes")
        if self.lm_weights_sha256 != given.lm_weights_sha256:
            problems.append(f"LM weights differ (bundle: {self.lm_name} {self.lm_weights_sha256[:12]}, given: {given.lm_name} {given.lm_weights_sha256[:12]})")
        if self.max_length != given.max_length:
            problems.append(f"max length differs (bundle: {self.max_length}, given: {given.max_length})")
        if self.pooling != given.pooling:
            problems.append(f"pooling differs (bundle: {self.pooling}, given: {given.pooling})")
        return problems


def portable_command(command: str) -> str:
    """`command` as a bundle records it: every absolute or home-relative path (an argument, or the
    value of `--option=path`) cut to its last component, so that a manifest or card names no
    folder of the author's machine (`--model /home/me/models/all-mpnet-base-v2` becomes
    `--model all-mpnet-base-v2`; the manifest's `lm` names the model itself)."""

    def portable(argument: str) -> str:
        option, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
        if value.startswith(("/", "~")):
            value = PurePath(value.rstrip("/")).name or "/"
        return f"{option}{equals}{value}"

    return shlex.join(portable(argument) for argument in shlex.split(command))
