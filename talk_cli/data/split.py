"""Train/validation/test splits: the dataset's own `split.json`, or a seeded random one."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from talk_cli.errors import DataError, SettingsError


@dataclass(frozen=True)
class SplitSpec:
    """How to split a dataset that has no `split.json` (or when told to ignore it).

    The default is the usual TAG protocol: a seeded random 60/20/20 split of all nodes.
    """

    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    use_dataset_split: bool = True

    def __post_init__(self) -> None:
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions) or sum(self.fractions) > 1 + 1e-9:
            raise SettingsError(f"split fractions must be three non-negative numbers (train, val, test) summing to at most 1, got {self.fractions}")
        if self.fractions[0] == 0:
            raise SettingsError("the train fraction of the split must be positive")

    def describe(self) -> str:
        train, val, test = (round(f * 100) for f in self.fractions)
        return f"random {train}/{val}/{test}, seed {self.seed}"

    @classmethod
    def from_description(cls, description: str) -> SplitSpec:
        """The spec that gives a split described as a bundle records it: 'split.json' (the
        dataset's own) or `describe()`'s 'random 60/20/20, seed 0' (percentages, so a split of
        fractions that are not whole percentages is not recovered; provenance checks catch that)."""
        found = re.fullmatch(r"random (\d+)/(\d+)/(\d+), seed (-?\d+)", description)
        if found is None:
            return cls()
        *percentages, seed = (int(g) for g in found.groups())
        return cls(tuple(p / 100 for p in percentages), seed, use_dataset_split=False)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse '0.6,0.2,0.2' (as given on the command line)."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise SettingsError(f"--split-fractions must be three comma-separated numbers, got {text!r}") from None
    if len(parts) != 3:
        raise SettingsError(f"--split-fractions must be three comma-separated numbers, got {text!r}")
    return parts  # type: ignore[return-value]


def random_masks(num_nodes: int, spec: SplitSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(spec.seed)
    order = torch.randperm(num_nodes, generator=generator)
    n_train = round(spec.fractions[0] * num_nodes)
    n_val = round(spec.fractions[1] * num_nodes)
    n_test = min(round(spec.fractions[2] * num_nodes), num_nodes - n_train - n_val)
    bounds = [0, n_train, n_train + n_val, n_train + n_val + n_test]
    masks = []
    for start, stop in zip(bounds, bounds[1:]):
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[order[start:stop]] = True
        masks.append(mask)
    return masks[0], masks[1], masks[2]


SPLIT_KEYS = {"train": "train", "valid": "val", "val": "val", "test": "test"}


def masks_from_split_file(split: object, num_nodes: int, where: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate a parsed `split.json` (`{"train": [...], "valid": [...], "test": [...]}`)."""
    if not isinstance(split, dict):
        raise DataError(f"{where}: expected a JSON object with keys train, valid, test")
    unknown = sorted(set(split) - set(SPLIT_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; expected train, valid (or val), test")
    if "train" not in split:
        raise DataError(f"{where}: missing the 'train' list")
    owner: dict[int, str] = {}
    masks = {name: torch.zeros(num_nodes, dtype=torch.bool) for name in ("train", "val", "test")}
    for key, ids in split.items():
        if not isinstance(ids, list):
            raise DataError(f"{where}: '{key}' must be a list of node ids")
        for node in ids:
            if not isinstance(node, int) or isinstance(node, bool):
                raise DataError(f"{where}: '{key}' holds {node!r}, which is not an integer node id")
            if not 0 <= node < num_nodes:
                raise DataError(f"{where}: '{key}' names node {node}, but node ids run from 0 to {num_nodes - 1}")
            if node in owner:
                if owner[node] == key:
                    raise DataError(f"{where}: node {node} is listed twice in '{key}'")
                raise DataError(f"{where}: node {node} is in both '{owner[node]}' and '{key}'; split sets must not overlap")
            owner[node] = key
            masks[SPLIT_KEYS[key]][node] = True
    return masks["train"], masks["val"], masks["test"]
