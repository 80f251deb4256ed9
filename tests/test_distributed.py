"""`torchrun` with two gloo processes on the CPU (`--device cpu`, also on a GPU machine, so that the
one-process run it is compared with is on the CPU too): the encoder splits the chunks between the ranks
and the assembled features cache equals a single process's, bit for bit; the outer loop shards
the real graph and gives the bundle that one process gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import assert_same_distillation, recipe, run_cli, torchrun
from safetensors.torch import load_file

from talk_cli.bundle import load_bundle


def test_two_ranks_encode_the_same_cache_as_one_process(tiny_model_dir, tmp_path):
    single = run_cli(
        "encode", "--dataset", "demo", "--model", tiny_model_dir, "--chunk-size", "64", "--device", "cpu", "--out", tmp_path / "one.safetensors", "--quiet"
    )
    assert single.exit_code == 0, single.output
    ran = torchrun("encode", "--dataset", "demo", "--model", str(tiny_model_dir), "--chunk-size", "64", "--device", "cpu", "--out", str(tmp_path / "two.safetensors"),
                   "--json", env={"TALK_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    one, two = (load_file(str(tmp_path / f"{n}.safetensors"))["features"] for n in ("one", "two"))
    assert torch.equal(one, two)
    assert ran.stdout.count('"shape"') == 1  # one summary, from rank 0
    assert not (tmp_path / "two.safetensors.partial").exists()


@pytest.mark.parametrize(
    "variant",
    [
        # several LM chunks per rank, with the inversion; from the seed texts, where the tiny LM's loss falls within 12 steps
        ["--method", "talk", "--invert-steps", "3", "--init", "texts"],
        ["--method", "kernel-features", "--select", "gcn", {"structure": "learned", "soft_labels": True}],  # gradients that skip the LM
    ],
)
def test_two_ranks_distil_the_same_bundle_as_one_process(tiny_model_dir, tmp_path, variant):
    *flags, keys = variant if isinstance(variant[-1], dict) else (*variant, {})
    keys = {"lm_chunk": 3, "checkpoint_every": 5} | keys  # several LM chunks per rank; checkpoints on the way
    common = ["distill", "--dataset", "demo", "--model", str(tiny_model_dir), "--device", "cpu", "--size", "10", "--steps", "12", "--eval-every", "3",
              "--krr-batch", "50", "--seq-len", "6", "--recipe", str(recipe(tmp_path, **keys)), *flags]  # fmt: skip
    single = run_cli(*common, "--out", tmp_path / "one", "--quiet")
    assert single.exit_code == 0, single.output
    ran = torchrun(*common, "--out", str(tmp_path / "two"))  # the same features cache, encoded above
    assert ran.returncode == 0, ran.stderr[-3000:]

    one, two = load_bundle(tmp_path / "one"), load_bundle(tmp_path / "two")
    assert one.distillation.curve[-1]["loss"] < one.distillation.curve[0]["loss"]  # it learned something to compare
    assert_same_distillation(one, two)
    assert not (tmp_path / "two.checkpoint").exists()


def test_a_killed_rank_leaves_chunks_that_a_rerun_resumes(tiny_model_dir, tmp_path):
    args = ["encode", "--dataset", "demo", "--model", str(tiny_model_dir), "--chunk-size", "16", "--device", "cpu", "--json"]
    killed = torchrun(*args, "--out", tmp_path / "two.safetensors", program=(str(Path(__file__).with_name("rank_that_dies.py")),))
    assert killed.returncode != 0
    assert not (tmp_path / "two.safetensors").exists()
    left = sorted((tmp_path / "two.safetensors.partial").glob("chunk-*.safetensors"))
    assert any(f.name == "chunk-000001.safetensors" for f in left)  # rank 1's first chunk survived

    resumed = torchrun(*args, "--out", str(tmp_path / "two.safetensors"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Every chunk the killed run left is taken up again, whichever rank wrote it; how many rank 0
    # finished before torchrun stopped it depends on the machine's speed, so the count is the files'.
    assert json.loads(resumed.stdout)["resumed_chunks"] == len(left)
    single = run_cli(*args, "--out", tmp_path / "one.safetensors", "--quiet")
    assert single.exit_code == 0, single.output
    one, two = (load_file(str(tmp_path / f"{n}.safetensors"))["features"] for n in ("one", "two"))
    assert torch.equal(one, two)


def test_the_interleaved_kernel_is_refused_under_torchrun(tiny_model_dir, tmp_path):
    interleaved = str(recipe(tmp_path, kernel="interleaved"))
    ran = torchrun("distill", "--dataset", "demo", "--model", str(tiny_model_dir), "--recipe", interleaved, "--out", str(tmp_path / "b"))
    assert ran.returncode != 0
    assert "run the interleaved kernel or the inner loop in one process" in ran.stderr
    assert re.search(r"exitcode\s*:\s*2", ran.stderr)  # each rank exits 2; the traceback is torchrun's report of that
    assert "encoding" not in ran.stderr  # refused before any work
