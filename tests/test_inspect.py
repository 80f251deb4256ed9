"""`talk inspect`: summary, --json, --verify on good and damaged bundles, --decode, --plot."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import make_bundle, recipe, run_cli

from talk_cli.bundle import write_bundle
from talk_cli.bundle.bundle import LMInfo
from talk_cli.encode import load_language_model


@pytest.fixture
def bundle_dir(tmp_path):
    return write_bundle(make_bundle(n=9, num_classes=3), tmp_path / "b")


def test_summary_and_json(bundle_dir):
    human = run_cli("inspect", bundle_dir)
    assert human.exit_code == 0, human.output
    for text in ("dataset", "language model", "distillation", "synthetic nodes per class", "class2"):
        assert text in human.stdout
    summary = json.loads(run_cli("inspect", bundle_dir, "--json").stdout)
    assert summary["synthetic"]["class_counts"] == {"class0": 3, "class1": 3, "class2": 3}
    adjacency = make_bundle(n=9, num_classes=3).adjacency
    degrees = (adjacency > 0).sum(dim=1)
    assert summary["synthetic"]["num_edges"] == int((adjacency > 0).sum()) // 2
    assert (summary["synthetic"]["degree_min"], summary["synthetic"]["degree_max"]) == (int(degrees.min()), int(degrees.max()))
    assert summary["distillation"]["settings"] == {"lr": 0.01, "steps": 10}


def test_verify_passes_on_a_good_bundle(bundle_dir):
    result = run_cli("inspect", bundle_dir, "--verify")
    assert result.exit_code == 0 and "sha256 of the tensor file matches" in result.stdout


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: (b / "synthetic.safetensors").write_bytes(b"\x00" * 10), "does not match the manifest"),
        (lambda b: (b / "manifest.yaml").unlink(), "no manifest.yaml"),
        (lambda b: (b / "manifest.yaml").write_text("format: [unclosed"), "not valid YAML"),
        (lambda b: (b / "synthetic.safetensors").unlink(), "tensor file synthetic.safetensors is missing"),
        (
            lambda b: (b / "manifest.yaml").write_text((b / "manifest.yaml").read_text().replace("format_version: 1.4.0", "format_version: 9.0.0")),
            "format version 9.0.0 is not supported",
        ),
    ],
)
def test_verify_fails_on_damage_with_a_clear_message(bundle_dir, damage, message):
    damage(bundle_dir)
    result = run_cli("inspect", bundle_dir, "--verify")
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def panels(png) -> int:
    """How many square panels a plot has side by side (the figure is 5.2 inches per panel)."""
    from matplotlib.image import imread

    pixels = imread(str(png))
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::97].tolist()}) > 20  # colours, not blank
    return round(pixels.shape[1] / pixels.shape[0])


def test_plot_without_the_real_graph_draws_the_synthetic_nodes_and_says_why(bundle_dir, tmp_path):
    result = run_cli("inspect", bundle_dir, "--plot", tmp_path / "g.png", "--json")  # its LM, 'tiny', cannot be loaded
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "the real nodes are not drawn: cannot load the LM 'tiny'" in result.stderr
    assert panels(tmp_path / "g.png") == 4  # projection, curve, structure (it has edges), class balance
    quiet = run_cli("inspect", bundle_dir, "--plot", tmp_path / "q.png", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("structure, expected_panels", [("identity", 3), ("knn", 4)])
def test_plot_of_a_distilled_bundle_shows_the_real_nodes_and_the_structure_only_with_edges(structure, expected_panels, tmp_path, tiny_model_dir):
    bundle = tmp_path / "b"
    made = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "10", "--steps", "6", "--eval-every", "2",
                   "--recipe", recipe(tmp_path, structure=structure), "--patience", "0", "--invert-steps", "0", "--out", bundle, "--quiet")  # fmt: skip
    assert made.exit_code == 0, made.output  # no warm start: the token loop runs its steps, so the curve has points to draw
    result = run_cli("inspect", bundle, "--plot", tmp_path / "g.png", "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0 and "not drawn" not in result.stderr, result.output
    assert panels(tmp_path / "g.png") == expected_panels
    summary = json.loads(result.stdout)
    assert [point["step"] for point in yaml.safe_load((bundle / "manifest.yaml").read_text())["distillation"]["curve"]] == [0, 2, 4]
    if structure == "identity":
        assert summary["synthetic"]["edges"].startswith("none: the synthetic nodes are unconnected (structure: identity")
    else:
        assert summary["synthetic"]["edges"] == f"{summary['synthetic']['num_edges']} weighted edges (structure: knn)"


def test_decode_recovers_tokens_placed_in_the_embeddings(tmp_path, tiny_model_dir):
    lm = load_language_model(str(tiny_model_dir))
    words = [["galaxy", "star", "orbit"], ["recipe", "oven", "sauce"], ["market", "bond", "risk"]]
    ids = torch.tensor([lm.tokenizer.convert_tokens_to_ids(w) for w in words])
    bundle = make_bundle(n=3, seq_len=3, hidden=16, num_classes=3)
    bundle.token_embeddings = lm.embeddings.weight.detach()[ids].clone()
    bundle.lm = LMInfo(
        name=str(tiny_model_dir),
        hidden_size=16,
        tokenizer=lm.identity.tokenizer,
        weights_sha256=lm.identity.weights_sha256,
        pooling="mean",
        max_length=32,
        embedding_size=16,
    )
    write_bundle(bundle, tmp_path / "b")
    result = run_cli("inspect", tmp_path / "b", "--decode", "--json")
    assert result.exit_code == 0, result.output
    decoded = json.loads(result.stdout)["decoded"]
    assert [row["tokens"] for row in decoded] == [" ".join(w) for w in words]
    assert [row["class"] for row in decoded] == ["class0", "class1", "class2"]
    human = run_cli("inspect", tmp_path / "b", "--decode")
    assert "galaxy star orbit" in human.stdout


def test_decode_with_a_model_of_another_size_is_a_clear_error(bundle_dir, tiny_model_dir):
    manifest = yaml.safe_load((bundle_dir / "manifest.yaml").read_text())
    assert manifest["lm"]["hidden_size"] == 16
    bigger = make_bundle(n=3, hidden=8, num_classes=3)
    write_bundle(bigger, bundle_dir, force=True)
    result = run_cli("inspect", bundle_dir, "--decode", "--model", tiny_model_dir)
    assert result.exit_code == 2 and "8-dimensional" in result.stderr


def test_missing_bundle_is_a_clear_error(tmp_path):
    result = run_cli("inspect", tmp_path / "nowhere")
    assert result.exit_code == 2 and "not a bundle directory" in result.stderr
