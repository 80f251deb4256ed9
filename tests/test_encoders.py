"""Any encoder a user brings: tiny random models of six architectures run the whole tool, pooling
is a recorded choice, and an LM that cannot read embedding sequences is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_VOCAB, run_cli

from talk_cli.distill import DistillSettings, run_distillation
from talk_cli.encode import LanguageModel, encode_embeddings, load_language_model
from talk_cli.encode.lora import ATTENTION_PROJECTIONS
from talk_cli.errors import ModelError
from talk_cli.pipeline import load_dataset

SHAPE = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
# Each architecture's own names for the same tiny shape; ELECTRA's input embeddings are narrower
# than its hidden states (it projects them), which the bundle format must carry.
ARCHITECTURES = {
    "bert": SHAPE,
    "roberta": SHAPE | {"pad_token_id": 0},
    "deberta-v2": SHAPE,
    "distilbert": {"dim": 16, "n_layers": 2, "n_heads": 2, "hidden_dim": 32},
    "mpnet": SHAPE | {"pad_token_id": 1},
    "electra": SHAPE | {"embedding_size": 8},
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """One randomly initialised model per architecture, saved like a hub model with a word-piece
    tokenizer (the tokenizer does not change what the model accepts)."""
    from transformers import AutoConfig, AutoModel, BertTokenizer

    folders = {}
    for name, shape in ARCHITECTURES.items():
        # MPNet's embeddings take id 1 as padding when they number positions from input ids, as the
        # real all-mpnet-base-v2 vocabulary has it; there [PAD] and [UNK] trade places, or every
        # unknown word would be numbered as padding and token ids and embeddings read differently.
        vocab = TINY_VOCAB if shape.get("pad_token_id") != 1 else [TINY_VOCAB[1], TINY_VOCAB[0], *TINY_VOCAB[2:]]
        tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
        folder = tmp_path_factory.mktemp(name)
        config = AutoConfig.for_model(name, vocab_size=len(TINY_VOCAB), max_position_embeddings=128, **shape)
        torch.manual_seed(0)
        AutoModel.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def ok(*args: str):
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_every_encoder_architecture_runs_encode_distill_decode_and_both_protocols(architecture, model_dirs, tmp_path):
    model = str(model_dirs[architecture])
    encoded = ok("encode", "--dataset", "demo", "--model", model, "--quiet", "--json")
    assert encoded["shape"] == [300, 16]
    bundle = tmp_path / "b"
    ok("distill", "--dataset", "demo", "--model", model, "--size", "10", "--steps", "3", "--out", bundle, "--quiet")
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    lm = load_language_model(model)
    assert manifest["lm"]["embedding_size"] == lm.embedding_size
    summary = ok("inspect", bundle, "--decode", "--model", model, "--json")
    assert all(row["tokens"] for row in summary["decoded"])
    for protocol in ("gnn", "joint"):
        result = ok("evaluate", bundle, "--dataset", "demo", "--model", model, "--protocol", protocol, "--runs", "1", "--epochs", "2", "--quiet", "--json")
        assert 0 <= result["test_accuracy_mean"] <= 1 and len(result["best_epochs"]) == 1
    # The stored features are what the LM makes of the stored token embeddings: a coreset's are
    # taken from the features cache, which must agree with reading its texts as embeddings.
    from talk_cli import load_bundle

    coreset = tmp_path / "herding"
    ok("distill", "--dataset", "demo", "--model", model, "--method", "herding", "--size", "10", "--out", coreset, "--quiet")
    for loaded in (load_bundle(bundle), load_bundle(coreset)):
        with torch.no_grad():
            assert torch.allclose(loaded.features, encode_embeddings(lm, loaded.token_embeddings, loaded.attention_mask), atol=1e-5)


def test_cls_pooling_is_recorded_in_the_manifest_and_read_back_by_evaluate(model_dirs, tmp_path):
    model = str(model_dirs["bert"])
    bundle = tmp_path / "b"
    ok("distill", "--dataset", "demo", "--model", model, "--pooling", "cls", "--size", "10", "--steps", "2", "--out", bundle, "--quiet")
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    assert manifest["lm"]["pooling"] == "cls"

    from talk_cli import load_bundle

    loaded, lm = load_bundle(bundle), load_language_model(model, pooling="cls")
    with torch.no_grad():
        first_token = lm.model(inputs_embeds=loaded.token_embeddings, attention_mask=loaded.attention_mask).last_hidden_state[:, 0]
    assert torch.allclose(loaded.features, first_token, atol=1e-5)
    # Evaluate reads the bundle's pooling; asking for another one is a provenance mismatch.
    ok("evaluate", bundle, "--dataset", "demo", "--model", model, "--runs", "1", "--epochs", "2", "--quiet")
    refused = run_cli("evaluate", bundle, "--dataset", "demo", "--model", model, "--pooling", "mean", "--runs", "1", "--epochs", "2", "--quiet")
    assert refused.exit_code == 2 and "pooling differs" in refused.output


def test_an_unknown_pooling_is_a_clear_error():
    result = run_cli("encode", "--dataset", "demo", "--pooling", "max", "--quiet")
    assert result.exit_code == 2 and "Invalid value for '--pooling'" in result.output


class TokenIdsOnly(torch.nn.Module):
    """An encoder whose forward takes token ids only (as some do), wrapping a real one."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_an_lm_that_cannot_take_inputs_embeds_gets_a_clear_error(model_dirs, tmp_path):
    real = load_language_model(str(model_dirs["bert"]))
    lm = LanguageModel(real.tokenizer, TokenIdsOnly(real.model), real.identity)
    demo = load_dataset("demo")
    features = torch.randn(demo.num_nodes, 16)
    for method in ("talk", "herding"):
        with pytest.raises(ModelError, match="does not accept"):
            run_distillation(demo, lm, features, DistillSettings(method=method, size=10, steps=2), torch.device("cpu"), tmp_path / method)
        assert not (tmp_path / method).exists()
    # kernel-features reads no texts, so it still works with such an LM.
    bundle, _ = run_distillation(demo, lm, features, DistillSettings(method="kernel-features", size=10, steps=2), torch.device("cpu"), tmp_path / "kf")
    assert bundle.num_synthetic == 10


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_lora_adapts_the_attention_projections_of_every_architecture(architecture, model_dirs):
    """peft's own table names no targets for some encoders (MPNet's projections are q, k, v): the
    adapters go on each family's query, key and value projections, and only they train."""
    from talk_cli.encode.lora import trainable_copy, trained_parameters

    lm = load_language_model(str(model_dirs[architecture]))
    tuned = trainable_copy(lm, torch.device("cpu"), rank=2)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name, _ in tuned.model.named_parameters() if "lora_" in name}
    assert len(adapted) == 3 and adapted in [set(names) for names in ATTENTION_PROJECTIONS], adapted
    assert all("lora_" in name for name, p in tuned.model.named_parameters() if p.requires_grad)
    assert sum(p.numel() for p in trained_parameters(tuned)) < sum(p.numel() for p in lm.model.parameters()) / 4
