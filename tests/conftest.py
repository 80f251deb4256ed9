"""Shared fixtures: an isolated cache folder, a tiny random BERT, TAG folders, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest.mock
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from talk_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
    set(
        "the a of and to in for on with we study show results model method new data graph text node paper "
        "galaxy star telescope orbit planet recipe oven spice dough sauce market equity bond credit risk "
        "patient clinical vaccine therapy melody harmony rhythm chord tempo".split()
    )
)


@pytest.fixture(autouse=True, scope="session")
def session_cache(tmp_path_factory):
    """Module- and session-scoped fixtures run before a test's own cache is set: they share this
    one, so the suite never writes into the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALK_CACHE_DIR", str(tmp_path_factory.mktemp("session-cache")))
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own features cache, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("TALK_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch):
    """The CLI makes torch's thread count follow the machine's load (talk_cli/threads.py); in the
    suite, where one process runs many tests, each test starts with the same count and leaves none
    behind, so that a busy CI machine cannot change one test's arithmetic through another's."""
    from talk_cli import threads

    count = torch.get_num_threads()
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 0)  # as on a quiet machine
    yield
    threads.POLICY = None
    torch.set_num_threads(count)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with a 60-word vocabulary, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    # transformers 5 takes the vocabulary itself (a path argument named vocab_file is ignored).
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(TINY_VOCAB)}, do_lower_case=True)
    assert tokenizer.tokenize("galaxy star") == ["galaxy", "star"]
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tag_folder(
    folder: Path,
    nodes: list[dict] | None = None,
    edges: list[tuple[int, int]] | None = None,
    labels: list[str] | None = None,
    split: dict | None = None,
) -> Path:
    """Write a small valid TAG folder (8 nodes, 2 classes), with any part replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    if nodes is None:
        words = ["galaxy star orbit", "recipe oven spice"]
        nodes = [{"id": i, "label": i % 2, "text": f"paper {i}: {words[i % 2]}"} for i in range(8)]
    if edges is None:
        edges = [(0, 2), (2, 4), (4, 6), (1, 3), (3, 5), (5, 7), (6, 0)]
    if labels is None:
        labels = ["astronomy", "cooking"]
    (folder / "nodes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in nodes))
    (folder / "edges.csv").write_text("src,dst\n" + "".join(f"{u},{v}\n" for u, v in edges))
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    if split is not None:
        (folder / "split.json").write_text(json.dumps(split))
    return folder


@pytest.fixture
def tag_folder(tmp_path) -> Path:
    return write_tag_folder(tmp_path / "tiny")


def recipe(folder: Path, **settings) -> Path:
    """A recipe file of `settings`: how the command line reaches recipe-only keys."""
    path = folder / f"recipe-{len(list(folder.glob('recipe-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def run_cli(*args: str):
    """Invoke `talk` in-process, with the command line in sys.argv as a shell would set it;
    returns click's Result with separate stdout and stderr."""
    words = [str(a) for a in args]
    with unittest.mock.patch.object(sys, "argv", ["talk", *words]):
        return CliRunner().invoke(app, words)


def torchrun(*args: str, env: dict[str, str] | None = None, program: tuple[str, ...] = ("-m", "talk_cli")) -> subprocess.CompletedProcess:
    """`talk` (or another `program`) under torchrun with two gloo processes on this CPU (this
    environment, plus `env`)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *program, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def assert_same_distillation(one, two) -> None:
    """Two bundles of the same kernel-method run: the same selected step and validation curve,
    losses and tensors within float tolerance (summing over ranks changes the order of additions)."""
    assert one.distillation.settings["run"]["best_step"] == two.distillation.settings["run"]["best_step"]
    for a, b in zip(one.distillation.curve, two.distillation.curve, strict=True):
        assert a["step"] == b["step"] and a["val_accuracy"] == b["val_accuracy"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    for name in ("token_embeddings", "features", "adjacency"):
        assert torch.allclose(getattr(one, name), getattr(two, name), rtol=1e-4, atol=1e-6), name
    assert torch.equal(one.labels, two.labels)


def make_bundle(n: int = 6, seq_len: int = 4, hidden: int = 16, num_classes: int = 3, soft: bool = False, seed: int = 0):
    """A valid random bundle (as `talk distill` would write), for reader/writer/inspect tests."""
    from talk_cli.bundle import Bundle, DatasetInfo, DistillationInfo, LMInfo

    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, n, generator=g)
    adjacency = ((weights + weights.T) / 2) * (torch.rand(n, n, generator=g) > 0.5).float()
    adjacency = ((adjacency + adjacency.T) / 2).fill_diagonal_(0)
    return Bundle(
        token_embeddings=torch.randn(n, seq_len, hidden, generator=g),
        attention_mask=torch.ones(n, seq_len, dtype=torch.int64),
        adjacency=adjacency,
        labels=torch.arange(n) % num_classes,
        features=torch.randn(n, hidden, generator=g),
        soft_labels=torch.softmax(torch.randn(n, num_classes, generator=g), dim=1) if soft else None,
        dataset=DatasetInfo(
            name="demo",
            content_hash="a" * 64,
            num_nodes=100,
            num_classes=num_classes,
            label_names=[f"class{i}" for i in range(num_classes)],
            split="random 60/20/20, seed 0",
            num_train=60,
        ),
        lm=LMInfo(
            name="tiny", hidden_size=hidden, tokenizer="BertTokenizerFast", weights_sha256="b" * 64, pooling="mean", max_length=32, embedding_size=hidden
        ),
        distillation=DistillationInfo(
            method="talk", ratio=0.1, ratio_of="train_nodes", num_synthetic=n, seed=0, settings={"lr": 0.01, "steps": 10}, ratio_denominator=60
        ),
    )
