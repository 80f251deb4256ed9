"""`talk encode` with a tiny random BERT: pooling, caching, staleness and resume."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli, write_tag_folder

from talk_cli.data import load_tag_folder, make_demo_tag
from talk_cli.encode import EncodeSettings, encode_tag, encode_texts, load_language_model, mean_pool
from talk_cli.encode.cache import recorded_key


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    return load_language_model(str(tiny_model_dir))


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_batched_encoding_equals_one_text_at_a_time(tiny_lm):
    texts = ["galaxy star", "the recipe of a new sauce with spice and oven", "", "market risk"]
    batched, tokens = encode_texts(texts, tiny_lm, EncodeSettings(batch_size=3), torch.device("cpu"))
    for i, text in enumerate(texts):
        inputs = tiny_lm.tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = tiny_lm.model(**inputs).last_hidden_state
        assert torch.allclose(batched[i], hidden.mean(dim=1)[0], atol=1e-5)
    assert tokens == sum(len(tiny_lm.tokenizer(t)["input_ids"]) for t in texts)


def test_truncation_to_max_length(tiny_lm):
    long_text = "star " * 100
    short, _ = encode_texts([long_text], tiny_lm, EncodeSettings(max_length=8), torch.device("cpu"))
    inputs = tiny_lm.tokenizer([long_text], truncation=True, max_length=8, return_tensors="pt")
    assert inputs["input_ids"].shape[1] == 8
    with torch.no_grad():
        expected = tiny_lm.model(**inputs).last_hidden_state.mean(dim=1)
    assert torch.allclose(short, expected, atol=1e-5)


def test_weights_hash_identifies_the_model(tiny_model_dir, tiny_lm):
    again = load_language_model(str(tiny_model_dir))
    assert again.identity == tiny_lm.identity
    with torch.no_grad():
        again.model.get_input_embeddings().weight[0, 0] += 1.0
    from talk_cli.encode.lm import weights_sha256

    assert weights_sha256(again.model) != tiny_lm.identity.weights_sha256


def test_cache_is_reused_and_records_its_key_inside(tiny_lm, tmp_path):
    tag = make_demo_tag()
    first = encode_tag(tag, tiny_lm)
    assert not first.reused and first.features.shape == (300, 16)
    second = encode_tag(tag, tiny_lm)
    assert second.reused and torch.equal(first.features, second.features) and second.path == first.path
    side = recorded_key(first.path)  # in the tensor file's own metadata: never out of step with it
    assert side["dataset"]["content_hash"] == tag.content_hash
    assert side["model"]["weights_sha256"] == tiny_lm.identity.weights_sha256
    assert (side["pooling"], side["max_length"], side["dtype"], side["shape"]) == ("mean", 128, "float32", [300, 16])


def test_cache_is_stale_when_dataset_or_settings_change(tiny_lm, tmp_path):
    out = tmp_path / "features.safetensors"
    folder = write_tag_folder(tmp_path / "g")
    encode_tag(load_tag_folder(folder), tiny_lm, out=out)
    assert encode_tag(load_tag_folder(folder), tiny_lm, out=out).reused
    assert not encode_tag(load_tag_folder(folder), tiny_lm, EncodeSettings(max_length=16), out=out).reused
    nodes = [{"id": i, "label": i % 2, "text": f"star {i}"} for i in range(8)]
    changed = load_tag_folder(write_tag_folder(tmp_path / "g", nodes=nodes))
    result = encode_tag(changed, tiny_lm, EncodeSettings(max_length=16), out=out)
    assert not result.reused
    assert recorded_key(out)["dataset"]["content_hash"] == changed.content_hash


def test_damaged_cache_is_encoded_again(tiny_lm, tmp_path):
    out = tmp_path / "features.safetensors"
    tag = make_demo_tag()
    encode_tag(tag, tiny_lm, out=out)
    out.write_bytes(b"garbage")
    result = encode_tag(tag, tiny_lm, out=out)
    assert not result.reused and result.features.shape == (300, 16)


def test_interrupted_run_resumes_from_finished_chunks(tiny_lm, tmp_path):
    tag = make_demo_tag()
    out = tmp_path / "features.safetensors"
    settings = EncodeSettings(chunk_size=100)
    done = []

    def interrupt_after_first_chunk(advance: int) -> None:
        done.append(advance)
        if sum(done) > 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_tag(tag, tiny_lm, settings, out=out, on_progress=interrupt_after_first_chunk)
    assert not out.exists() and (tmp_path / "features.safetensors.partial" / "chunk-000000.safetensors").is_file()
    resumed = encode_tag(tag, tiny_lm, settings, out=out)
    assert resumed.resumed_chunks == 1 and not resumed.reused
    fresh = encode_tag(tag, tiny_lm, settings, out=tmp_path / "fresh.safetensors")
    assert torch.allclose(resumed.features, fresh.features, atol=1e-6)
    assert not (tmp_path / "features.safetensors.partial").exists()


def test_cli_json_summary_and_reuse(tiny_model_dir, tmp_path):
    out = tmp_path / "f.safetensors"
    first = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--out", out, "--json", "--quiet")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["shape"] == [300, 16] and summary["path"] == str(out) and not summary["reused"]
    assert summary["texts_per_second"] > 0 and summary["model"]["hidden_size"] == 16
    assert first.stderr == ""  # --quiet
    second = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--out", out, "--json")
    assert json.loads(second.stdout)["reused"] is True
    assert "features [300, 16]: reused the cache" in second.stderr
    forced = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--out", out, "--json", "--force")
    assert json.loads(forced.stdout)["reused"] is False


def test_cli_help_lists_subcommands_and_version():
    result = run_cli("--help")
    for name in ("encode", "distill", "evaluate", "inspect"):
        assert name in result.stdout
    version = run_cli("--version")
    assert version.exit_code == 0 and version.stdout.startswith("talk ")


def test_mean_and_cls_features_of_a_dataset_keep_their_own_caches(tiny_model_dir):
    """Before 2026-12-04 the cache file name left out the pooling: cls features replaced mean ones."""
    from conftest import run_cli

    def encode(pooling: str) -> dict:
        result = run_cli("encode", "--dataset", "demo", "--model", tiny_model_dir, "--pooling", pooling, "--json", "--quiet")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    mean, cls, again = encode("mean"), encode("cls"), encode("mean")
    assert not mean["reused"] and not cls["reused"] and mean["path"] != cls["path"]
    assert again["reused"] and again["path"] == mean["path"]


def test_encoding_in_bfloat16_leaves_the_callers_weights_as_loaded(tiny_lm):
    """Before 2026-12-04 a bf16 encode cast the caller's LM in place, for good."""
    from talk_cli.encode.lm import weights_sha256

    encode_tag(make_demo_tag(), tiny_lm, EncodeSettings(dtype="bfloat16"))
    assert next(tiny_lm.model.parameters()).dtype == torch.float32
    assert weights_sha256(tiny_lm.model) == tiny_lm.identity.weights_sha256
