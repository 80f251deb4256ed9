"""Checkpoints of a running distillation, so that `--resume` continues an interrupted run.

A checkpoint is a folder beside the output bundle (`<out>.checkpoint/`) holding a state dict
(`Distiller.state_dict()`: nested mappings and lists of tensors and plain values) in two files:
`state.safetensors` with every tensor, under its path in the state (`optimizer/state/0/exp_avg`),
and `state.yaml` with everything else, each tensor replaced by a reference to that path, plus
the identity of the run and the tensor file's sha256. The YAML is written last: its presence
marks a complete checkpoint. Nothing here knows what the state means.
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
from talk_cli.errors import SettingsError

TENSOR_REF = "tensor"  # {"tensor": "path/in/the/state"} stands for a tensor in state.yaml


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint")


def split_tensors(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` with its tensors moved into `tensors` (keyed by path) and replaced by references;
    tuples become lists (YAML's safe dumper writes lists)."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {TENSOR_REF: path}
    if isinstance(value, dict):
        return {key: split_tensors(item, f"{path}/{key}", tensors) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [split_tensors(item, f"{path}/{index}", tensors) for index, item in enumerate(value)]
    return value


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {TENSOR_REF}:
            return tensors[value[TENSOR_REF]]
        return {key: join_tensors(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [join_tensors(item, tensors) for item in value]
    return value


def save_checkpoint(out: Path, state: dict[str, Any], identity: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split_tensors(state, "", tensors)
    data = save(tensors)
    folder = checkpoint_dir(out)
    atomic_write_bytes(folder / "state.safetensors", data)
    meta = {"identity": identity, "tensors_sha256": hashlib.sha256(data).hexdigest(), "state": skeleton}
    atomic_write_bytes(folder / "state.yaml", yaml.safe_dump(meta, sort_keys=False).encode())


def load_checkpoint(out: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The state saved beside `out`, refusing a damaged checkpoint or one of another run."""
    folder = checkpoint_dir(out)
    if not (folder / "state.yaml").is_file():
        raise SettingsError(
            f"--resume: no checkpoint at {folder} (nothing to resume: the run stopped before its first checkpoint, "
            "or finished); run without --resume to start over"
        )
    try:
        meta = yaml.safe_load((folder / "state.yaml").read_text())
        data = (folder / "state.safetensors").read_bytes()
    except (OSError, yaml.YAMLError) as err:
        raise SettingsError(f"--resume: the checkpoint at {folder} cannot be read ({err})") from None
    if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("tensors_sha256"):
        raise SettingsError(f"--resume: the checkpoint at {folder} is damaged (checksum mismatch); delete it to start over")
    differ = differences(meta.get("identity") or {}, identity)
    if differ:
        raise SettingsError(f"--resume: the checkpoint at {folder} is from a different run ({', '.join(differ)} differ)")
    try:
        tensors = load(data)
    except SafetensorError as err:
        raise SettingsError(f"--resume: the checkpoint at {folder} is damaged ({err})") from None
    return join_tensors(meta["state"], tensors)


def differences(recorded: dict[str, Any], expected: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the entries where `recorded` disagrees with `expected`."""
    differ = []
    for key, value in expected.items():
        if isinstance(value, dict) and isinstance(recorded.get(key), dict):
            differ += differences(recorded[key], value, f"{prefix}{key}.")
        elif recorded.get(key) != value:
            differ.append(f"{prefix}{key}")
    return differ


def remove_checkpoint(out: Path) -> None:
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
