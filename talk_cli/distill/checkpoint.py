"""Checkpoints of a running distillation, so that `--resume` continues an interrupted run.

A checkpoint is a folder beside the output bundle (`<out>.checkpoint/`) with `state.safetensors`
(the synthetic set, the best copy so far, Adam's moments, the batch sampler's RNG state and,
when the inner loop runs, the LM and GCN weights) and `state.yaml` (step, history, and what the
run depends on). The YAML is written last and records the tensor file's sha256.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load, save

from talk_cli.atomic import atomic_write_bytes
from talk_cli.distill.talk import TalkDistiller
from talk_cli.errors import SettingsError


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint")


def identity(distiller: TalkDistiller) -> dict[str, Any]:
    """What must be equal for a checkpoint to be resumable."""
    return {
        "dataset_hash": distiller.tag.content_hash,
        "split": distiller.tag.split_description,
        "lm_weights_sha256": distiller.lm.identity.weights_sha256,
        "settings": {k: v for k, v in distiller.settings.as_dict().items() if k not in ("steps", "checkpoint_every")},
    }


def save_checkpoint(distiller: TalkDistiller, out: Path) -> None:
    tensors = {f"current.{k}": v for k, v in distiller.state().items()}
    tensors |= {f"best.{k}": v for k, v in distiller.best["state"].items()}
    tensors["sampler_rng"] = distiller.generator.get_state()
    for index, state in distiller.optimizer.state_dict()["state"].items():
        tensors |= {f"adam.{index}.{k}": torch.as_tensor(v) for k, v in state.items()}
    if distiller.gcn is not None:
        tensors |= {f"lm.{k}": v for k, v in distiller.lm.model.state_dict().items()}
        tensors |= {f"gcn.{k}": v for k, v in distiller.gcn.state_dict().items()}
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    folder = checkpoint_dir(out)
    atomic_write_bytes(folder / "state.safetensors", data)
    meta = {
        "step": distiller.step,
        "best_step": distiller.best["step"],
        "best_val_accuracy": distiller.best["val"],
        "history": distiller.history,
        "tensors_sha256": hashlib.sha256(data).hexdigest(),
        **identity(distiller),
    }
    atomic_write_bytes(folder / "state.yaml", yaml.safe_dump(meta, sort_keys=False).encode())


def load_checkpoint(distiller: TalkDistiller, out: Path) -> None:
    """Restore `distiller` from the checkpoint beside `out`, refusing one from another run."""
    folder = checkpoint_dir(out)
    if not (folder / "state.yaml").is_file():
        raise SettingsError(f"--resume: no checkpoint at {folder} (nothing to resume)")
    try:
        meta = yaml.safe_load((folder / "state.yaml").read_text())
        data = (folder / "state.safetensors").read_bytes()
    except (OSError, yaml.YAMLError) as err:
        raise SettingsError(f"--resume: the checkpoint at {folder} cannot be read ({err})") from None
    if hashlib.sha256(data).hexdigest() != meta.get("tensors_sha256"):
        raise SettingsError(f"--resume: the checkpoint at {folder} is damaged (checksum mismatch); delete it to start over")
    expected = identity(distiller)
    differ = [k for k in expected if meta.get(k) != expected[k]]
    if "settings" in differ:
        differ.remove("settings")
        differ += [f"settings.{k}" for k, v in expected["settings"].items() if meta["settings"].get(k) != v]
    if differ:
        raise SettingsError(f"--resume: the checkpoint at {folder} is from a different run ({', '.join(differ)} differ)")
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise SettingsError(f"--resume: the checkpoint at {folder} is damaged ({err})") from None

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    distiller.load_state(section("current."))
    distiller.best = {"step": meta["best_step"], "val": meta["best_val_accuracy"], "state": section("best.")}
    distiller.generator.set_state(tensors["sampler_rng"])
    adam = distiller.optimizer.state_dict()
    by_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in section("adam.").items():
        index, name = key.split(".", 1)
        by_param.setdefault(int(index), {})[name] = value.to(distiller.device)
    adam["state"] = by_param
    distiller.optimizer.load_state_dict(adam)
    if distiller.gcn is not None:
        distiller.lm.model.load_state_dict(section("lm."))
        distiller.gcn.load_state_dict(section("gcn."))
        distiller.inner_refresh_real_features()
    distiller.step = meta["step"]
    distiller.history = meta["history"]


def remove_checkpoint(out: Path) -> None:
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
