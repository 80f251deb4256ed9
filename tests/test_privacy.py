"""What a bundle reveals of the real texts: the measurement, the text-free start, the manifest and
card entries, `talk inspect --privacy` and the `--max-text-overlap` guard (docs/privacy.md)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import make_bundle, run_cli, write_tag_folder

from talk_cli import load_bundle
from talk_cli.bundle import LMInfo, write_bundle
from talk_cli.bundle.privacy import found_ngrams, measure_exposure, ngrams, words
from talk_cli.distill.synthetic import special_frame, vocabulary_embeddings, vocabulary_ids
from talk_cli.encode import load_language_model

# Texts made only of the tiny vocabulary's words, so that a bundle holding them decodes to them exactly.
TEXTS = {
    0: ["we study the galaxy star orbit and planet", "a new telescope for the star and planet orbit"],
    1: ["a recipe with the oven spice and dough", "we show a sauce recipe for the oven"],
}


@pytest.fixture
def vocabulary_tag(tmp_path):
    nodes = [{"id": i, "label": i % 2, "text": TEXTS[i % 2][(i // 2) % 2]} for i in range(12)]
    edges = [(i, i + 2) for i in range(10)]
    return write_tag_folder(tmp_path / "words", nodes=nodes, edges=edges)


def distil(tag, model, out, *flags):
    return run_cli("distill", "--dataset", tag, "--model", model, "--size", "2", "--steps", "2", "--seq-len", "8",
                   "--out", out, "--quiet", "--json", *flags)  # fmt: skip


def bundle_of_tokens(lm, model_dir, rows: list[list[str]]):
    """A bundle whose token embeddings are exactly these tokens' embeddings."""
    ids = torch.tensor([lm.tokenizer.convert_tokens_to_ids(row) for row in rows])
    bundle = make_bundle(n=len(rows), seq_len=ids.shape[1], hidden=16, num_classes=2)
    bundle.token_embeddings = lm.embeddings.weight.detach()[ids].clone()
    bundle.lm = LMInfo(str(model_dir), 16, lm.identity.tokenizer, lm.identity.weights_sha256, "mean", 32, 16)
    return bundle


def test_words_and_ngrams_ignore_case_accents_and_punctuation():
    assert words("Café, GALAXY-star!") == ["cafe", "galaxy", "star"]
    assert ngrams(["a", "b", "c", "d", "e"]) == {("a", "b", "c", "d"), ("b", "c", "d", "e")}
    assert ngrams(["a", "b", "c"]) == set()
    wanted = {("a", "b", "c", "d"), ("x", "y", "z", "w")}
    assert found_ngrams(wanted, ["nothing here", "so A b C d too"]) == {("a", "b", "c", "d")}


def test_a_bundle_of_real_texts_reads_back_and_one_of_other_words_does_not(tiny_model_dir):
    lm = load_language_model(str(tiny_model_dir))
    texts = ["we study the galaxy star orbit", "a recipe with the oven spice", "the market and credit risk"]
    copied = ["[CLS]", "a", "recipe", "with", "the", "oven", "spice", "[SEP]"]
    unrelated = ["[CLS]", "melody", "vaccine", "bond", "chord", "telescope", "dough", "[SEP]"]
    exposure = measure_exposure(bundle_of_tokens(lm, tiny_model_dir, [copied, unrelated]), lm, texts)
    held, other = exposure.nodes
    assert held.ngram_overlap == 1.0 and held.position_match == 1.0 and held.closest_node == 1
    assert held.token_distance == pytest.approx(0.0, abs=1e-5) and held.decoded == "a recipe with the oven spice"
    assert other.ngram_overlap == 0.0 and other.position_match < 0.5
    summary = exposure.summary()
    assert summary["mean_ngram_overlap"] == 0.5 and summary["max_ngram_overlap"] == 1.0 and summary["worst_node"] == 0
    assert summary["nodes_holding_text"] == 1 and "1 of 2 synthetic nodes read back real text" in exposure.line()


def test_the_vocabulary_start_draws_ordinary_tokens_framed_by_the_special_ones(tiny_model_dir):
    lm = load_language_model(str(tiny_model_dir))
    prefix, suffix = special_frame(lm.tokenizer)
    assert lm.tokenizer.convert_ids_to_tokens(prefix + suffix) == ["[CLS]", "[SEP]"]
    pool = set(vocabulary_ids(lm).tolist())
    assert not pool & set(lm.tokenizer.all_special_ids) and len(pool) == lm.embeddings.weight.shape[0] - 5
    embeddings, mask = vocabulary_embeddings(lm, 4, 10, seed=3)
    assert embeddings.shape == (4, 10, 16) and mask.tolist() == [[1] * 10] * 4
    table = lm.embeddings.weight.detach()
    ids = torch.cdist(embeddings.reshape(-1, 16), table).argmin(dim=1).reshape(4, 10)
    assert ids[:, 0].tolist() == prefix * 4 and ids[:, -1].tolist() == suffix * 4
    assert set(ids[:, 1:-1].flatten().tolist()) <= pool
    again, _ = vocabulary_embeddings(lm, 4, 10, seed=3)
    other, _ = vocabulary_embeddings(lm, 4, 10, seed=4)
    assert torch.equal(embeddings, again) and not torch.equal(embeddings, other)


def test_a_text_start_is_recorded_as_holding_text_and_a_vocabulary_start_as_not(vocabulary_tag, tiny_model_dir, tmp_path):
    # kernel-features never moves its token embeddings: they are exactly where the start put them.
    texts = distil(vocabulary_tag, tiny_model_dir, tmp_path / "texts", "--method", "kernel-features", "--init", "texts")
    vocab = distil(vocabulary_tag, tiny_model_dir, tmp_path / "vocab", "--method", "kernel-features", "--init", "vocab")
    assert texts.exit_code == 0 and vocab.exit_code == 0, texts.output + vocab.output
    held, free = json.loads(texts.stdout)["privacy"], json.loads(vocab.stdout)["privacy"]
    assert held["start"] == "texts" and held["nodes_holding_text"] == 2 and held["mean_ngram_overlap"] == 1.0
    assert free["start"] == "vocab" and free["nodes_holding_text"] == 0 and free["max_ngram_overlap"] == 0.0
    for name, first_line in (("texts", "This bundle holds real training text"), ("vocab", "This bundle holds no real training text")):
        manifest = yaml.safe_load((tmp_path / name / "manifest.yaml").read_text())
        assert manifest["format_version"] == "1.4.0" and manifest["privacy"]["start"] == name
        card = (tmp_path / name / "README.md").read_text()
        what_it_is = card.split("## What it is")[1].split("##")[0]
        assert what_it_is.strip().startswith(f"- {first_line}"), what_it_is
        seeds = manifest["distillation"]["settings"]["run"]["seed_nodes"]
        assert f"`distillation.settings.run.seed_nodes`): {', '.join(map(str, seeds))}." in what_it_is
        shown = run_cli("inspect", tmp_path / name)
        assert shown.stdout.startswith(first_line), shown.stdout[:200]


def test_talk_from_the_vocabulary_runs_the_warm_start_and_records_its_start(vocabulary_tag, tiny_model_dir, tmp_path):
    result = distil(vocabulary_tag, tiny_model_dir, tmp_path / "b", "--invert-steps", "3")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["settings"]["init"] == "vocab" and payload["privacy"]["start"] == "vocab"
    assert payload["phase_seconds"]["privacy check"] >= 0 and "inversion" in payload["phase_seconds"]
    assert load_bundle(tmp_path / "b").privacy == payload["privacy"]


def test_a_coreset_says_first_that_it_holds_real_texts(vocabulary_tag, tiny_model_dir, tmp_path):
    result = distil(vocabulary_tag, tiny_model_dir, tmp_path / "b", "--method", "herding")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["privacy"]["start"] == "real nodes"
    card = (tmp_path / "b" / "README.md").read_text()
    assert card.split("## What it is")[1].strip().startswith("- This bundle holds real training texts: its nodes are real training nodes")
    assert "`distillation.settings.nodes`" in card
    assert run_cli("inspect", tmp_path / "b").stdout.startswith("This bundle holds real training texts")


def test_inspect_privacy_reports_each_node_and_a_summary_line(vocabulary_tag, tiny_model_dir, tmp_path):
    made = distil(vocabulary_tag, tiny_model_dir, tmp_path / "b", "--method", "kernel-features", "--init", "texts")
    assert made.exit_code == 0, made.output
    result = run_cli("inspect", tmp_path / "b", "--privacy", "--dataset", vocabulary_tag, "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    privacy = json.loads(result.stdout)["privacy"]
    assert privacy["summary"]["nodes_holding_text"] == 2 and len(privacy["nodes"]) == 2
    for node in privacy["nodes"]:
        assert node["ngram_overlap"] == 1.0 and node["position_match"] == 1.0
        assert any(text.startswith(node["decoded"]) for text in sum(TEXTS.values(), []))  # the first 6 words (8 tokens)
    human = run_cli("inspect", tmp_path / "b", "--privacy", "--dataset", vocabulary_tag, "--model", tiny_model_dir)
    assert human.exit_code == 0 and "privacy: 2 of 2 synthetic nodes read back real text" in human.stdout


def test_the_guard_refuses_a_bundle_holding_text_and_writes_nothing(vocabulary_tag, tiny_model_dir, tmp_path):
    out = tmp_path / "guarded"
    result = distil(vocabulary_tag, tiny_model_dir, out, "--method", "kernel-features", "--init", "texts", "--max-text-overlap", "0.2")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "synthetic node 0" in message and "100%" in message and "--max-text-overlap 0.2" in message
    assert list(tmp_path.iterdir()) == [vocabulary_tag]  # no bundle, no checkpoint, no staging folder
    allowed = distil(vocabulary_tag, tiny_model_dir, out, "--method", "kernel-features", "--init", "vocab", "--max-text-overlap", "0.2")
    assert allowed.exit_code == 0, allowed.output
    assert load_bundle(out).privacy["max_ngram_overlap"] <= 0.2


def test_a_vocabulary_start_without_the_inversion_is_flagged(vocabulary_tag, tiny_model_dir, tmp_path):
    def shown(*flags):
        return run_cli("distill", "--dataset", vocabulary_tag, "--model", tiny_model_dir, "--invert-steps", "0", "--print-settings", *flags).stderr

    assert "note: --init vocab with --invert-steps 0 starts the token loop from random vocabulary tokens" in shown()
    assert "note: --init vocab" not in shown("--init", "texts") and "note: --init vocab" not in shown("--invert-steps", "5")


def test_a_bad_init_or_overlap_is_refused_with_exit_2(vocabulary_tag, tiny_model_dir, tmp_path):
    assert distil(vocabulary_tag, tiny_model_dir, tmp_path / "b", "--init", "medoids").exit_code == 2
    result = distil(vocabulary_tag, tiny_model_dir, tmp_path / "b", "--max-text-overlap", "1.5")
    assert result.exit_code == 2 and "max_text_overlap must be in [0, 1]" in result.stderr


def test_a_bundle_without_a_privacy_entry_says_it_was_not_measured(tmp_path):
    write_bundle(make_bundle(), tmp_path / "b")
    assert run_cli("inspect", tmp_path / "b").stdout.startswith("Not measured when it was made")
