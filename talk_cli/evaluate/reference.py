"""The full-data reference cache: a reference is computed once per provenance and training
settings and stored as YAML in the cache folder, so that every bundle evaluated later gets its
% of full. The key leaves out the number of runs and the first seed: a reference of 10 runs
serves an evaluation of 3, and `talk evaluate --full` only recomputes when asked for more runs
than the cache holds. The joint reference also leaves out how long it trained (its epochs are
passes over the real training nodes, not comparable with a bundle's), so a bundle's joint result
finds the joint reference of the same model and learning rates."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from talk_cli.atomic import atomic_write_bytes
from talk_cli.encode.cache import cache_dir
from talk_cli.gnn.settings import EvalSettings
from talk_cli.provenance import Provenance

LORA = ("lora_rank", "lora_alpha", "lora_dropout")
UNKEYED = {
    "gnn": ("runs", "seed", "lm_lr", "finetune_lr", "probe_epochs", "refit", "batch_size", *LORA),
    "joint": ("runs", "seed", "epochs", "eval_every", "batch_size"),
}


def reference_key(provenance: Provenance, settings: EvalSettings, protocol: str = "gnn") -> dict[str, Any]:
    kept = {k: v for k, v in dataclasses.asdict(settings).items() if k not in UNKEYED[protocol]}
    if protocol == "joint":
        kept["finetune_lr"] = settings.joint_gnn_lr  # the rate it was fine-tuned at: --lr when there is no probe
        kept["refit"] = settings.refits  # what its checks did
        if settings.lora_rank == 0:  # every weight fine-tuned: the adapters' settings mean nothing (and older keys lack them)
            kept = {k: v for k, v in kept.items() if k not in LORA}
    return {**provenance.run_key(), "protocol": protocol, "settings": kept}


def reference_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "references" / f"{key['dataset']}-{digest}.yaml"


def cached_reference(key: dict[str, Any]) -> dict[str, Any] | None:
    path = reference_path(key)
    if not path.is_file():
        return None
    try:
        stored = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError):
        return None
    return stored.get("summary") if isinstance(stored, dict) and stored.get("key") == key else None


def store_reference(key: dict[str, Any], summary: dict[str, Any]) -> None:
    atomic_write_bytes(reference_path(key), yaml.safe_dump({"key": key, "summary": summary}, sort_keys=False).encode())
