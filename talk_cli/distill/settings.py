"""Distillation settings, and recipes: YAML files of settings that flags override."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from talk_cli.errors import SettingsError
from talk_cli.kernel import LOSSES, VARIANTS, KernelSpec

STRUCTURES = ("identity", "knn", "learned")
METHODS = ("talk", "kernel-features", "random", "herding", "kcenter")
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


@dataclass(frozen=True)
class DistillSettings:
    """Every knob of a TaLK run. Defaults are the measured choices of docs/method.md."""

    method: str = "talk"  # or a baseline: kernel-features, random, herding, kcenter
    ratio: float | None = 0.01  # fraction of the training nodes; ignored when size is set
    size: int | None = None  # number of synthetic nodes, overrides ratio
    seq_len: int = 16  # tokens per synthetic text
    steps: int = 100  # outer (KRR) steps
    lr: float = 0.01  # Adam, token embeddings
    lr_adjacency: float = 0.05  # Adam, learned adjacency logits
    lr_labels: float = 0.05  # Adam, soft labels
    kernel: str = "propagate-first"
    hops: int = 2  # K aggregation steps of the kernel
    layers: int = 1  # L ReLU layers of the kernel
    ridge: float = 0.01  # λ, relative to tr(K_SS)/n_syn
    loss: str = "mse"
    krr_batch: int = 2048  # real training nodes per outer step (0: all)
    structure: str = "identity"
    knn: int = 3  # neighbours per node for the knn structure (and the learned one's start)
    soft_labels: bool = False
    inner_every: int = 0  # run the inner LM+GNN loop every R outer steps (0: never)
    inner_steps: int = 5
    inner_lr: float = 1e-5
    eval_every: int = 10  # validation (KRR accuracy) every this many steps
    lm_chunk: int = 16  # synthetic nodes per gradient-injection chunk
    max_length: int = 128  # tokens per real text for the features cache
    checkpoint_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size is None and self.ratio is None:
            raise SettingsError("give --ratio or --size")
        if self.size is None and not (0 < self.ratio <= 1):  # type: ignore[operator]
            raise SettingsError(f"--ratio must be in (0, 1] (a fraction of the training nodes), got {self.ratio}")
        if self.size is not None and self.size < 1:
            raise SettingsError(f"--size must be positive, got {self.size}")
        for name in ("seq_len", "steps", "lm_chunk", "eval_every", "checkpoint_every", "max_length", "knn"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "lr_adjacency", "lr_labels", "inner_lr", "ridge"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.inner_every < 0 or self.inner_steps < 0 or self.krr_batch < 0:
            raise SettingsError("inner_every, inner_steps and krr_batch must be non-negative")
        if self.method not in METHODS:
            raise SettingsError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "kernel-features" and self.inner_every:
            raise SettingsError("the kernel-features method has no LM in its loop: inner_every must be 0")
        if self.structure not in STRUCTURES:
            raise SettingsError(f"structure must be one of {', '.join(STRUCTURES)}, got {self.structure!r}")
        if self.loss not in LOSSES:
            raise SettingsError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.kernel not in VARIANTS:
            raise SettingsError(f"kernel must be one of {', '.join(VARIANTS)}, got {self.kernel!r}")
        self.kernel_spec()  # validates hops/layers for the variant

    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(self.kernel, self.hops, self.layers)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recipe_path(recipe: str) -> Path:
    """A recipe file path, or a name of a shipped recipe in recipes/."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SettingsError(f"recipe {recipe} does not exist")
        return path
    shipped = RECIPES_DIR / f"{recipe}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []
        raise SettingsError(f"unknown recipe {recipe!r}; shipped recipes: {', '.join(names) or 'none'}")
    return shipped


def read_recipe(path: Path) -> dict[str, Any]:
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


def resolve_settings(recipe: Path | None, overrides: dict[str, Any]) -> DistillSettings:
    """Defaults < recipe < command-line flags (None in `overrides` means 'not given')."""
    values = read_recipe(recipe) if recipe is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("size") is not None:
        values["ratio"] = None  # --size wins over any ratio
    try:
        return DistillSettings(**values)
    except TypeError as err:
        raise SettingsError(f"bad settings: {err}") from None
