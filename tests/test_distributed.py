"""`torchrun` with two gloo processes on the CPU: the encoder splits the chunks between the ranks
and the assembled features cache equals a single process's, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import run_cli


def torchrun(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "talk_cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600)


def test_two_ranks_encode_the_same_cache_as_one_process(tiny_model_dir, tmp_path):
    single = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--chunk-size", "64", "--out", tmp_path / "one.safetensors", "--quiet")
    assert single.exit_code == 0, single.output
    ran = torchrun("encode", "--dataset", "demo", "--model", str(tiny_model_dir), "--chunk-size", "64", "--out", str(tmp_path / "two.safetensors"),
                   "--json", env={"TALK_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    one, two = (load_file(str(tmp_path / f"{n}.safetensors"))["features"] for n in ("one", "two"))
    assert torch.equal(one, two)
    assert ran.stdout.count('"shape"') == 1  # one summary, from rank 0
    assert not (tmp_path / "two.safetensors.partial").exists()
