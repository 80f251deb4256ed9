"""Distillation settings, and recipes: YAML files of settings that flags override."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from talk_cli.distill.methods import METHODS
from talk_cli.encode.settings import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_POOLING,
    LORA_ALPHA,
    LORA_ALPHA_HELP,
    LORA_DROPOUT,
    LORA_DROPOUT_HELP,
    LORA_RANK_HELP,
    POOLINGS,
    check_lora,
)
from talk_cli.errors import SettingsError
from talk_cli.kernel.spec import LOSSES, VARIANTS, KernelSpec
from talk_cli.options import setting

STRUCTURES = ("identity", "knn", "learned")
SELECTIONS = ("krr", "gcn")
# Where a learned set's token sequences start: the seed nodes' texts (k-means medoids, the paper's
# start), or vocabulary tokens drawn with the seed, which reads no training text (docs/privacy.md).
INITS = ("texts", "vocab")
RECIPES = resources.files("talk_cli") / "recipes"  # package data: installed with the wheel
NO_RECIPE = "none"  # `--recipe none`: the defaults alone, as on a dataset without a shipped recipe
# What a coreset reads (how many nodes per class, which seed, the texts' length); every other
# setting drives the kernel loop, which a coreset does not run.
CORESET_SETTINGS = frozenset({"method", "ratio", "size", "allocation_power", "min_class_nodes", "max_length", "pooling", "seed", "max_text_overlap"})


@dataclass(frozen=True)
class DistillSettings:
    """Every knob of a distillation run. Defaults are the measured choices of docs/method.md."""

    method: str = setting("talk", "talk, or a baseline at the same budget (docs/method.md).", choices=METHODS)
    ratio: float | None = setting(0.01, "Synthetic nodes as a fraction of the training nodes.")
    size: int | None = setting(None, "Number of synthetic nodes (overrides --ratio).")
    allocation_power: float | None = setting(
        None,
        "Synthetic nodes per class in proportion to (training nodes of the class)^power: 1 keeps the training class "
        "balance, 0.5 (square root) gives small classes more, 0 gives every class the same. Unset: 1, or 0.5 where "
        "proportional shares would leave half the classes or more with a single node.",
    )
    min_class_nodes: int = setting(
        1,
        "At least this many synthetic nodes per class (never more than the class has training nodes) when the "
        "budget gives every class that many; otherwise one each.",
        cli=False,
    )
    seq_len: int = setting(16, "Tokens per synthetic text.")
    init: str = setting(
        "vocab",
        "Where the synthetic token sequences start: vocab (tokens drawn from the LM's vocabulary with the seed; "
        "the bundle holds no real text) or texts (the seed nodes' texts, the paper's start; decoding the bundle "
        "reads them back). docs/privacy.md.",
        choices=INITS,
    )
    max_text_overlap: float | None = setting(
        None,
        "Refuse to write a bundle in which any synthetic node's decoded text shares more than this fraction of its "
        "word 4-grams with the dataset's real texts (exit 2, nothing written; unset: no check). docs/privacy.md.",
    )
    steps: int = setting(100, "Outer (KRR) steps.")
    lr: float = setting(0.01, "Adam learning rate of the token embeddings.")
    lr_adjacency: float = setting(0.05, "Adam learning rate of the learned adjacency logits.", cli=False)
    lr_labels: float = setting(0.05, "Adam learning rate of the soft labels.", cli=False)
    kernel: str = setting("propagate-first", "Where the kernel's ReLU layers sit among its aggregation steps.", choices=VARIANTS, cli=False)
    hops: int = setting(2, "Aggregation steps K of the kernel.")
    layers: int = setting(1, "ReLU layers L of the kernel.")
    ridge: float = setting(0.003, "KRR ridge λ, relative to tr(K_SS)/n_syn.")
    loss: str = setting("mse", "KRR loss on the real training labels.", choices=LOSSES, cli=False)
    krr_batch: int = setting(2048, "Real training nodes per outer step (0: all).")
    structure: str = setting("identity", "Synthetic edges: identity (none), knn or learned.", choices=STRUCTURES, cli=False)
    knn: int = setting(3, "Neighbours per node of the knn structure (and the learned one's start).", cli=False)
    soft_labels: bool = setting(False, "Learn the synthetic labels.", flag="--soft-labels/--hard-labels", cli=False)
    inner_every: int = setting(0, "Inner LM+GNN loop every R outer steps (0: off).")
    inner_steps: int = setting(5, "Steps of each inner round.", cli=False)
    inner_lr: float = setting(1e-5, "LM learning rate of the inner loop.", cli=False)
    inner_restart: bool = setting(
        False,
        "Start each inner round from the pretrained LM and a fresh GCN, as `talk evaluate --protocol joint` "
        "trains, instead of continuing the previous round's.",
        flag="--inner-restart/--inner-continue",
        cli=False,
    )
    lora_rank: int = setting(0, "Inner loop: " + LORA_RANK_HELP)
    lora_alpha: float = setting(LORA_ALPHA, "Inner loop: " + LORA_ALPHA_HELP, cli=False)
    lora_dropout: float = setting(LORA_DROPOUT, "Inner loop: " + LORA_DROPOUT_HELP, cli=False)
    inner_refresh: int = setting(
        128,
        "Real training nodes re-encoded with the inner loop's LM after each inner round; the others keep the "
        "features they were last encoded with (0: re-encode every real node).",
        cli=False,
    )
    invert_steps: int = setting(
        100,
        "talk: learn free feature vectors with the kernel loop first, then fit the token embeddings to them "
        "for this many steps before the KRR loop on the tokens (0: start from the seed texts).",
    )
    invert_cosine: float = setting(
        0.99,
        "Stop the inversion early once the LM's output of the token embeddings reaches this mean cosine similarity "
        "with the free feature vectors (0: run every --invert-steps step).",
    )
    eval_every: int = setting(10, "Validation every this many steps.")
    patience: int = setting(
        1,
        "talk: stop the token loop after this many validations in a row that do not beat the best (0: run every step); the best state is kept either way.",
    )
    select: str = setting(
        "gcn",
        "What scores a step on the real validation nodes: krr (the kernel's prediction) or gcn (a GCN, the gnn "
        "protocol's model, trained on the synthetic set).",
        choices=SELECTIONS,
    )
    select_nodes: int = setting(
        5000,
        "select gcn: judge on at most this many real validation nodes, a seeded sample where there are more (exact "
        "GCN outputs on them, from their 1-hop neighbourhood; keeps selection's time and memory flat on large graphs); "
        "0: every validation node.",
        cli=False,
    )
    lm_chunk: int = setting(16, "Synthetic nodes per gradient-injection chunk (bounds memory).", cli=False)
    max_length: int = setting(DEFAULT_MAX_LENGTH, "Tokens per real text (the features cache).")
    pooling: str = setting(DEFAULT_POOLING, "How the LM's token states become one feature: the mean, or the first token's ([CLS]).", choices=POOLINGS)
    checkpoint_every: int = setting(25, "Write a checkpoint every this many steps (for --resume).", cli=False)
    seed: int = setting(0, "Seed of initialisation and batches.")

    def __post_init__(self) -> None:
        if self.size is None and self.ratio is None:
            raise SettingsError("give --ratio or --size")
        if self.size is None and not (0 < self.ratio <= 1):  # type: ignore[operator]
            raise SettingsError(f"--ratio must be in (0, 1] (a fraction of the training nodes), got {self.ratio}")
        if self.size is not None and self.size < 1:
            raise SettingsError(f"--size must be positive, got {self.size}")
        for name in ("seq_len", "steps", "lm_chunk", "eval_every", "checkpoint_every", "max_length", "knn", "min_class_nodes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.invert_cosine <= 1:
            raise SettingsError(f"invert_cosine must be in [0, 1], got {self.invert_cosine}")
        if self.max_text_overlap is not None and not 0 <= self.max_text_overlap <= 1:
            raise SettingsError(f"max_text_overlap must be in [0, 1], got {self.max_text_overlap}")
        if self.init not in INITS:
            raise SettingsError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.allocation_power is not None and not 0 <= self.allocation_power <= 1:
            raise SettingsError(f"allocation_power must be in [0, 1], got {self.allocation_power}")
        for name in ("lr", "lr_adjacency", "lr_labels", "inner_lr", "ridge"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("inner_every", "inner_steps", "inner_refresh", "krr_batch", "invert_steps", "patience", "select_nodes"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.method not in METHODS:
            raise SettingsError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.inner_every and not METHODS[self.method].reads_texts:
            raise SettingsError(f"the {self.method} method has no LM in its loop: inner_every must be 0")
        if self.inner_every and self.select == "krr" and METHODS[self.method].reads_texts:
            raise SettingsError(
                "--select krr with --inner-every would score the kernel's view through the inner loop's tuned LM, while the bundle stores "
                "what the pretrained LM makes of the tokens; use --select gcn (the default), which judges the stored set"
            )
        if self.structure not in STRUCTURES:
            raise SettingsError(f"structure must be one of {', '.join(STRUCTURES)}, got {self.structure!r}")
        if self.select not in SELECTIONS:
            raise SettingsError(f"select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if self.loss not in LOSSES:
            raise SettingsError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.kernel not in VARIANTS:
            raise SettingsError(f"kernel must be one of {', '.join(VARIANTS)}, got {self.kernel!r}")
        if self.pooling not in POOLINGS:
            raise SettingsError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        check_lora(self.lora_rank, self.lora_alpha, self.lora_dropout)
        self.kernel_spec()  # validates hops/layers for the variant

    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(self.kernel, self.hops, self.layers)

    @property
    def warm_starts(self) -> bool:
        """Whether the run begins with the feature-to-token warm start: only a loop that learns
        token sequences has one (kernel-features and the coresets ignore `invert_steps`)."""
        return self.invert_steps > 0 and METHODS[self.method].learns and METHODS[self.method].reads_texts

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def unread_settings(method: str, given: list[str]) -> list[str]:
    """The settings among `given` that `method` never reads: a coreset's loop settings."""
    return [] if METHODS[method].learns else sorted(set(given) - CORESET_SETTINGS)


def recipe_path(recipe: str) -> Path | Traversable:
    """A recipe file path, or the name of a recipe shipped with the package."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SettingsError(f"recipe {recipe} does not exist")
        return path
    shipped = RECIPES / f"{recipe}.yaml"
    if not shipped.is_file():
        names = sorted(p.name.removesuffix(".yaml") for p in RECIPES.iterdir() if p.name.endswith(".yaml"))
        raise SettingsError(f"unknown recipe {recipe!r}; shipped recipes: {', '.join(names) or 'none'}")
    return shipped


def chosen_recipe(dataset: str, recipe: str | None) -> Path | Traversable | None:
    """The recipe named (a file, a shipped name, or `none`), else the one shipped for this dataset."""
    if recipe == NO_RECIPE:
        return None
    return recipe_path(recipe) if recipe is not None else dataset_recipe(dataset)


def dataset_recipe(dataset: str) -> Traversable | None:
    """The recipe shipped for a dataset of this name (the folder's name for a path), if any."""
    shipped = RECIPES / f"{Path(dataset).name}.yaml"
    return shipped if shipped.is_file() else None


def read_recipe(path: Path | Traversable) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        raise SettingsError(f"recipe {path}: cannot be read as YAML ({err})") from None
    if not isinstance(recipe, dict):
        raise SettingsError(f"recipe {path}: expected a mapping of settings")
    known = {f.name: f for f in fields(DistillSettings)}
    unknown = sorted(set(map(str, recipe)) - set(known))
    if unknown:
        raise SettingsError(f"recipe {path}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    for key, value in recipe.items():
        if not value_fits(value, known[key].type):
            raise SettingsError(f"recipe {path}: '{key}' must be {known[key].type}, got {value!r}")
    return recipe


def value_fits(value: Any, annotation: str) -> bool:
    """Does a YAML value fit a field annotated as e.g. 'int', 'float | None', 'bool', 'str'?"""
    kinds = [kind.strip() for kind in str(annotation).split("|")]
    if value is None:
        return "None" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return "int" in kinds or "float" in kinds
    if isinstance(value, float):
        return "float" in kinds
    return isinstance(value, str) and "str" in kinds


def resolve_settings(recipe: Path | Traversable | None, overrides: dict[str, Any]) -> DistillSettings:
    """Defaults < recipe < command-line flags (None in `overrides` means 'not given')."""
    values = read_recipe(recipe) if recipe is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("size") is not None:
        values["ratio"] = None  # --size wins over any ratio
    try:
        return DistillSettings(**values)
    except TypeError as err:
        raise SettingsError(f"bad settings: {err}") from None
