"""Every kind of bad input ends in a specific one-line message and exit code 2."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_tag_folder

GOOD_NODES = [{"id": i, "label": i % 2, "text": f"paper {i}"} for i in range(8)]


def nodes_with(index: int, **change) -> list[dict]:
    nodes = [dict(n) for n in GOOD_NODES]
    nodes[index].update(change)
    return [{k: v for k, v in n.items() if v is not None} for n in nodes]


def break_nodes_file(text: str):
    def apply(folder):
        (folder / "nodes.jsonl").write_text(text)

    return apply


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def write(name: str, text: str):
    return lambda folder: (folder / name).write_text(text)


CASES = {
    "missing nodes.jsonl": (remove("nodes.jsonl"), "missing required file nodes.jsonl"),
    "missing edges.csv": (remove("edges.csv"), "missing required file edges.csv"),
    "missing labels.txt": (remove("labels.txt"), "missing required file labels.txt"),
    "malformed json": (
        break_nodes_file('{"id": 0, "label": 0, "text": "a"}\n{"id": 1, "label": 1, "text": "b"\n'),
        "nodes.jsonl line 2, column 34: malformed JSON (Expecting ',' delimiter)",
    ),
    "json not an object": (break_nodes_file("[1, 2]\n"), "nodes.jsonl line 1: expected a JSON object"),
    "id gap": (
        lambda f: write_tag_folder(f, nodes=nodes_with(7, id=9)),
        "node ids must be 0..n-1 with none missing; 8 nodes but id 9 given and id(s) [7] missing",
    ),
    "repeated id": (lambda f: write_tag_folder(f, nodes=nodes_with(5, id=2)), "nodes.jsonl line 6: id 2 repeats line 3"),
    "negative id": (lambda f: write_tag_folder(f, nodes=nodes_with(0, id=-1)), "'id' must be a non-negative integer"),
    "label out of range": (
        lambda f: write_tag_folder(f, nodes=nodes_with(3, label=2)),
        "nodes.jsonl line 4: label 2 is out of range; labels.txt names 2 classes (0..1)",
    ),
    "missing label": (lambda f: write_tag_folder(f, nodes=nodes_with(4, label=None)), "nodes.jsonl line 5: missing 'label'"),
    "text not a string": (lambda f: write_tag_folder(f, nodes=nodes_with(1, text=5)), "line 2: 'text' must be a string"),
    "edge to unknown node": (
        lambda f: write_tag_folder(f, edges=[(0, 1), (3, 8)]),
        "edges.csv line 3: node 8 is not a node id (ids run from 0 to 7)",
    ),
    "edge not integers": (write("edges.csv", "src,dst\n0,1\n1,x\n"), "edges.csv line 3: expected two integer node ids"),
    "edges header": (write("edges.csv", "a,b\n0,1\n"), "edges.csv line 1: expected the header 'src,dst'"),
    "duplicate class name": (write("labels.txt", "x\nx\n"), "labels.txt line 2: class name 'x' repeats line 1"),
    "no class names": (write("labels.txt", "\n"), "labels.txt: no class names"),
    "overlapping split": (
        lambda f: write_tag_folder(f, split={"train": [0, 1, 2, 3], "valid": [3, 4], "test": [5]}),
        "node 3 is in both 'train' and 'valid'; split sets must not overlap",
    ),
    "split names unknown node": (
        lambda f: write_tag_folder(f, split={"train": [0, 1, 20], "valid": [], "test": []}),
        "'train' names node 20, but node ids run from 0 to 7",
    ),
    "split unknown key": (lambda f: write_tag_folder(f, split={"train": [0, 1], "dev": [2]}), "unknown key(s) ['dev']"),
    "split malformed": (write("split.json", "{"), "split.json line 1, column 2: malformed JSON"),
    "class without training node": (
        lambda f: write_tag_folder(f, split={"train": [0, 2, 4], "valid": [1], "test": [3]}),
        "class 1 ('cooking') has 4 node(s) but no training node",
    ),
    "not valid utf-8": (lambda f: (f / "labels.txt").write_bytes(b"\xffabc\n"), "labels.txt line 1, column 1: not valid UTF-8 (byte 0xff"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_gives_message_and_exit_2(case, tag_folder, tiny_model_dir):
    damage, message = CASES[case]
    damage(tag_folder)
    result = run_cli("encode", "--dataset", tag_folder, "--model", tiny_model_dir)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_empty_texts_are_reported_not_refused(tmp_path, tiny_model_dir):
    folder = write_tag_folder(tmp_path / "g", nodes=nodes_with(3, text="   "))
    result = run_cli("encode", "--dataset", folder, "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    assert "note: 1 node(s) with empty text" in result.stderr
    assert json.loads(result.stdout)["dataset"]["empty_texts"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "no-such-dataset", "--data-root", "."], "unknown dataset 'no-such-dataset' under data root ."),
        (["--dataset", "./no/such/folder"], "no/such/folder: not a directory"),
        (["--dataset", "demo", "--split-fractions", "0.5,0.5"], "--split-fractions must be three comma-separated numbers"),
        (["--dataset", "demo", "--max-length", "1"], "--max-length must be at least 2"),
        (["--dataset", "demo", "--batch-size", "0"], "--batch-size must be positive"),
        (["--dataset", "demo", "--dtype", "float64"], "Invalid value for '--dtype': Value error, 'float64' is not one of 'float32', 'float16', 'bfloat16'"),
        (["--dataset", "demo", "--device", "tpu"], "Invalid value for '--device': Value error, 'tpu' is not one of 'auto', 'cpu', 'cuda'"),
        (["--dataset", "demo", "--model", "./missing-model-folder"], "cannot load the LM './missing-model-folder': no such folder"),
        (["--dataset", "demo", "--model", "/nonexistent"], "cannot load the LM '/nonexistent': no such folder"),
        (["--dataset", "demo", "--model", "."], "the folder has no config.json, so it is not a transformers model folder"),
        (["--dataset", "demo", "--model", "some-org/some-model"], "not a local folder, and not in the local Hugging Face cache"),
    ],
)
def test_bad_settings_give_message_and_exit_2(args, message):
    result = run_cli("encode", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("flag", ["--inner-every", "--patience", "--invert-steps", "--krr-batch"])
def test_a_negative_count_names_its_setting(flag, tmp_path):
    result = run_cli("distill", "--dataset", "demo", flag, "-1", "--out", tmp_path / "b")
    name = flag[2:].replace("-", "_")
    assert result.exit_code == 2 and f"{name} must not be negative, got -1" in result.stderr
    assert not (tmp_path / "b").exists()


def test_length_beyond_the_lm_positions_is_a_clear_error(tiny_model_dir, tmp_path):
    result = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--max-length", "200")
    assert result.exit_code == 2 and "--max-length 200 exceeds the 128 positions" in result.stderr
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--seq-len", "200", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--seq-len 200 exceeds the 128 positions" in result.stderr


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_cli("encode", "--dataset", "demo", "--device", "cuda")
    assert result.exit_code == 2
    assert "no CUDA GPU is available" in result.stderr


def test_torchrun_with_fewer_gpus_than_processes_runs_on_the_cpu_or_says_why(monkeypatch, tiny_model_dir, tmp_path):
    """NCCL gives every rank a GPU of its own: two processes on a one-GPU machine must not both
    take cuda (rank 1 would crash on a GPU that does not exist). `auto` falls back to the CPU and
    says so; `cuda` is refused. Seen on an H100 machine, simulated here."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # what torchrun --nproc-per-node 2 sets
    refused = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--device", "cuda")
    assert refused.exit_code == 2, refused.output
    assert "torchrun started 2 processes on this machine and it has 1 GPU(s) (use --nproc-per-node 1, or --device cpu)" in refused.stderr
    fell_back = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--out", tmp_path / "f.safetensors", "--json")
    assert fell_back.exit_code == 0, fell_back.output
    assert "--device auto runs on the CPU" in fell_back.stderr
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    from talk_cli.device import resolve_device

    assert resolve_device("auto").type == "cuda" and resolve_device("cpu").type == "cpu"


def test_threads_sets_torchs_thread_count_and_refuses_zero(tiny_model_dir):
    import torch

    before = torch.get_num_threads()
    try:
        result = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--threads", "1", "--quiet")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    refused = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--threads", "0")
    assert refused.exit_code == 2 and "--threads must be at least 1" in refused.stderr
