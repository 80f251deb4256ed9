"""The package's shape: recipes ship in the wheel, the library sets no process-wide state, the
CLI's options come from the settings dataclasses, and every method composes with every structure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, recipe, run_cli

from talk_cli.distill import DistillSettings


def test_wheel_ships_the_recipes_and_an_installed_cli_uses_them(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO), "-w", str(tmp_path / "wheel")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("talk_cli-*.whl")
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert {p.name for p in (target / "talk_cli" / "recipes").iterdir()} >= {"arxiv_2023.yaml", "demo.yaml", "paper.yaml"}
    environment = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy, not this checkout
    shown = subprocess.run(
        [sys.executable, "-m", "talk_cli", "distill", "--dataset", "arxiv_2023", "--print-settings"],
        capture_output=True, text=True, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"recipe: {target / 'talk_cli' / 'recipes' / 'arxiv_2023.yaml'}" in shown.stderr
    assert json.loads(shown.stdout)["max_length"] == 64 and json.loads(shown.stdout)["seq_len"] == 16


def test_importing_the_library_changes_no_process_environment():
    code = "import os, talk_cli.pipeline, talk_cli.encode.lm; print(os.environ.get('HF_HUB_OFFLINE'))"
    environment = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr


def test_print_settings_layers_defaults_recipe_and_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 7\nlr: 0.5\n")
    shown = run_cli("distill", "--dataset", "somewhere/mine", "--recipe", recipe, "--lr", "0.2", "--print-settings")
    assert shown.exit_code == 0, shown.output
    settings = json.loads(shown.stdout)
    assert (settings["steps"], settings["lr"], settings["seq_len"]) == (7, 0.2, DistillSettings().seq_len)
    plain = run_cli("distill", "--dataset", "somewhere/mine", "--print-settings")
    assert "no recipe for 'mine': using the defaults" in plain.stderr
    assert json.loads(plain.stdout) == DistillSettings().as_dict()
    shipped = run_cli("distill", "--dataset", "arxiv_2023", "--print-settings")  # no data needed to print
    assert json.loads(shipped.stdout)["layers"] != DistillSettings().layers
    bare = run_cli("distill", "--dataset", "arxiv_2023", "--recipe", "none", "--print-settings")
    assert json.loads(bare.stdout) == DistillSettings().as_dict()


def test_distill_help_shows_every_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: nothing wraps inside a default
    shown = run_cli("distill", "--help")
    text = " ".join(shown.stdout.split())  # help wraps at the terminal's width
    for flag, default in (("--ratio", "0.01"), ("--steps", "100"), ("--seq-len", "16"), ("--lr", "0.01")):
        assert f"{default}, or the recipe's" in text, flag
    assert "the dataset's shipped recipe, if any" in text


@pytest.mark.parametrize("method", ["talk", "kernel-features"])
@pytest.mark.parametrize("structure", ["identity", "knn", "learned"])
def test_every_kernel_method_composes_with_every_structure(method, structure, tiny_model_dir, tmp_path):
    """`--method kernel-features --structure learned` once crashed with an AttributeError."""
    out = tmp_path / "b"
    args = ["--dataset", "demo", "--model", tiny_model_dir, "--method", method, "--recipe", recipe(tmp_path, structure=structure)]
    result = run_cli("distill", *args, "--size", "10", "--steps", "2", "--seq-len", "8", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == method and (out / "manifest.yaml").is_file()


def test_percent_of_full_uses_a_cached_reference_with_more_runs(tiny_model_dir, tmp_path):
    common = ["--dataset", "demo", "--model", tiny_model_dir, "--epochs", "20", "--json", "--quiet"]
    made = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--steps", "2", "--seq-len", "8", "--out", tmp_path / "b")
    assert made.exit_code == 0, made.output
    full = json.loads(run_cli("evaluate", "--full", *common, "--runs", "3").stdout)
    again = json.loads(run_cli("evaluate", "--full", *common, "--runs", "2").stdout)
    assert again["reference_cached"] and again["test_accuracy_mean"] == full["test_accuracy_mean"]
    assert again["peak_rss_mib"] == full["peak_rss_mib"] > 0  # the training's peak, stored with the reference
    fewer = json.loads(run_cli("evaluate", tmp_path / "b", *common, "--runs", "1").stdout)
    assert fewer["full_runs"] == 3 and fewer["percent_of_full"] is not None
