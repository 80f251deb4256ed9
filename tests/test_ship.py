"""What a collaborator and a new user meet: `talk import` of tables, the bundle's dataset card and
manifest record, choices in --help, LoRA fine-tuning and the `paper` recipe."""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, recipe, run_cli
from hypothesis import given
from hypothesis import strategies as st

from talk_cli import load_bundle
from talk_cli.bundle.card import card_front_matter
from talk_cli.data import load_tag_folder
from talk_cli.encode import load_language_model
from talk_cli.encode.lm import weights_sha256
from talk_cli.provenance import portable_command

TOPICS = {"astro": "galaxy star orbit", "kitchen": "recipe oven spice", "finance": "market equity bond"}


def node_table(n: int = 45) -> pd.DataFrame:
    names = list(TOPICS)
    return pd.DataFrame(
        {
            "paper": [f"W{i:04d}" for i in range(n)],
            "title": [f"paper {i}" for i in range(n)],
            "abstract": [f"we study {TOPICS[names[i % 3]]}" for i in range(n)],
            "topic": [names[i % 3] for i in range(n)],
        }
    )


def edge_table(n: int = 45) -> pd.DataFrame:
    pairs = [(f"W{i:04d}", f"W{(i + 3) % n:04d}") for i in range(n)] + [("W0001", "W9999"), ("nobody", "W0002")]
    return pd.DataFrame(pairs, columns=["citing", "cited"])


def write(table: pd.DataFrame, path) -> None:
    suffix = path.suffix
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".tsv":
        table.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_json(path, orient="records", lines=True)


COLUMNS = ["--id-column", "paper", "--text-column", "title", "--text-column", "abstract", "--label-column", "topic",
           "--source-column", "citing", "--target-column", "cited"]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_import_reads_each_table_format(tmp_path, suffix):
    nodes, edges = tmp_path / f"nodes{suffix}", tmp_path / f"edges{suffix}"
    write(node_table(), nodes)
    write(edge_table(), edges)
    result = run_cli("import", nodes, "--edges", edges, "--out", tmp_path / "tag", *COLUMNS, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["num_nodes"] == 45 and report["dropped_edges"] == 2 and report["label_names"] == ["astro", "finance", "kitchen"]
    assert "dropped 2 edge row(s)" in result.stderr
    tag = load_tag_folder(tmp_path / "tag")
    assert tag.num_nodes == 45 and tag.label_names == ["astro", "finance", "kitchen"]
    assert tag.texts[4] == "paper 4\nwe study recipe oven spice"  # text columns joined in order, one per line
    assert tag.label_names[int(tag.labels[4])] == "kitchen"
    first = json.loads((tmp_path / "tag" / "nodes.jsonl").read_text().splitlines()[0])
    assert first["orig_id"] == "W0000"


def test_an_imported_csv_with_a_parquet_edge_table_distils(tmp_path, tiny_model_dir):
    write(node_table(), tmp_path / "nodes.csv")
    write(edge_table(), tmp_path / "edges.parquet")
    made = run_cli("import", tmp_path / "nodes.csv", "--edges", tmp_path / "edges.parquet", "--out", tmp_path / "mine", *COLUMNS)
    assert made.exit_code == 0, made.output
    out = tmp_path / "bundle"
    result = run_cli("distill", "--dataset", tmp_path / "mine", "--model", tiny_model_dir, "--size", "3", "--steps", "2",
                     "--seq-len", "8", "--invert-steps", "2", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_bundle(out).dataset.label_names == ["astro", "finance", "kitchen"]


def test_integer_ids_and_labels_keep_their_values_as_names(tmp_path):
    nodes = pd.DataFrame({"id": [10, 20, 30, 40, 50, 60], "text": ["galaxy"] * 3 + ["oven"] * 3, "label": [7, 7, 7, 3, 3, 3]})
    write(nodes, tmp_path / "n.parquet")
    write(pd.DataFrame({"src": [10, 20, 40], "dst": [20, 30, 50]}), tmp_path / "e.csv")
    result = run_cli("import", tmp_path / "n.parquet", "--edges", tmp_path / "e.csv", "--out", tmp_path / "tag", "--quiet")
    assert result.exit_code == 0, result.output
    tag = load_tag_folder(tmp_path / "tag")
    assert tag.label_names == ["3", "7"] and tag.labels.tolist() == [1, 1, 1, 0, 0, 0] and tag.edge_index.shape[1] == 6


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns=["abstract"]), "nodes.csv: no column 'abstract'"),
        (lambda t: t.assign(abstract=""), "column 'abstract': every text is empty"),
        (lambda t: t.assign(paper=["W0000"] + list(t.paper[1:-1]) + ["W0000"]), "row 45, column 'paper': id 'W0000' repeats"),
        (lambda t: t.assign(topic=[None] + list(t.topic[1:])), "row 1, column 'topic': no value"),
    ],
)
def test_a_bad_node_table_exits_2_with_one_line_and_leaves_nothing(tmp_path, change, message):
    write(change(node_table()), tmp_path / "nodes.csv")
    write(edge_table(), tmp_path / "edges.csv")
    result = run_cli("import", tmp_path / "nodes.csv", "--edges", tmp_path / "edges.csv", "--out", tmp_path / "out", *COLUMNS)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edges.csv", "nodes.csv"]  # no folder, no staging left


def test_an_unreadable_or_unknown_table_is_named(tmp_path):
    write(edge_table(), tmp_path / "edges.csv")
    (tmp_path / "nodes.parquet").write_bytes(b"not parquet at all")
    broken = run_cli("import", tmp_path / "nodes.parquet", "--edges", tmp_path / "edges.csv", "--out", tmp_path / "out")
    assert broken.exit_code == 2 and "nodes.parquet: cannot be read as parquet" in broken.stderr
    unknown = run_cli("import", tmp_path / "nodes.xlsx", "--edges", tmp_path / "edges.csv", "--out", tmp_path / "out")
    assert unknown.exit_code == 2 and "unknown table format '.xlsx'" in unknown.stderr
    assert not (tmp_path / "out").exists()


# --- the bundle's card and manifest ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_bundle(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "demo-b"
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--ratio", "0.05", "--steps", "2",
                     "--seq-len", "8", "--invert-steps", "2", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_every_bundle_has_a_dataset_card_with_front_matter(demo_bundle):
    text = (demo_bundle / "README.md").read_text()
    matter = card_front_matter(text)
    assert matter["license"] == "other" and "source dataset's licence" in text
    assert {"pretty_name", "task_categories", "size_categories", "tags", "source_datasets"} <= set(matter)
    assert matter["size_categories"] == ["n<1K"] and matter["source_datasets"] == ["demo"]
    manifest = yaml.safe_load((demo_bundle / "manifest.yaml").read_text())
    for words in ("ratio 0.05 of the 180 training nodes", manifest["lm"]["weights_sha256"], "## How to load it", "## Limitations",
                  "talk distill --dataset demo", "Not measured yet"):  # fmt: skip
        assert words in text, words


def test_the_manifest_records_the_denominator_device_and_versions(demo_bundle):
    manifest = yaml.safe_load((demo_bundle / "manifest.yaml").read_text())
    assert manifest["format_version"] == "1.4.0"
    assert manifest["distillation"]["ratio_denominator"] == manifest["dataset"]["num_train"] == 180
    made = manifest["made"]
    assert made["device"] == "cpu" and made["device_name"] and made["torch"] == torch.__version__ and made["talk_cli"]
    assert made["command"].startswith("talk distill --dataset demo") and made["seconds"] > 0
    assert manifest["card"]["file"] == "README.md" and manifest["card"]["license"] == "other"


def test_the_card_is_checksummed_and_shown_on_request(demo_bundle, tmp_path):
    import shutil

    shown = run_cli("inspect", demo_bundle, "--card")
    assert shown.exit_code == 0 and shown.stdout == (demo_bundle / "README.md").read_text()
    verified = run_cli("inspect", demo_bundle, "--verify")
    assert "dataset card" in verified.stdout
    tampered = shutil.copytree(demo_bundle, tmp_path / "t")
    (tampered / "README.md").write_text((tampered / "README.md").read_text().replace("other", "mit", 1))
    refused = run_cli("inspect", tampered, "--verify")
    assert refused.exit_code == 2 and "README.md: sha256" in refused.stderr
    # A bundle of format 1.1 has no card: it still loads.
    old = shutil.copytree(demo_bundle, tmp_path / "old")
    manifest = yaml.safe_load((old / "manifest.yaml").read_text())
    for key in ("card", "made"):
        del manifest[key]
    del manifest["distillation"]["ratio_denominator"]
    manifest["format_version"] = "1.1.0"
    (old / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (old / "README.md").unlink()
    assert load_bundle(old).num_synthetic == load_bundle(demo_bundle).num_synthetic
    no_card = run_cli("inspect", old, "--card")
    assert no_card.exit_code == 2 and "no dataset card" in no_card.stderr


def test_write_back_puts_the_results_in_the_card(demo_bundle, tiny_model_dir, tmp_path):
    import shutil

    bundle = shutil.copytree(demo_bundle, tmp_path / "b")
    result = run_cli("evaluate", bundle, "--dataset", "demo", "--model", tiny_model_dir, "--runs", "1", "--epochs", "3", "--write-back", "--quiet")
    assert result.exit_code == 0, result.output
    text = (bundle / "README.md").read_text()
    assert "| gnn | gcn |" in text and "Not measured yet" not in text
    assert load_bundle(bundle).evaluation  # and the card still matches its checksum


def test_a_coreset_bundle_records_its_allocation_power(tiny_model_dir, tmp_path):
    out = tmp_path / "herding"
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--method", "herding", "--ratio", "0.1",
                     "--allocation-power", "0.5", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_bundle(out).distillation.settings["allocation_power"] == 0.5


# --- help, LoRA and the paper's configuration ----------------------------------------------------


def test_help_lists_the_choices_and_shows_no_bool():
    text = run_cli("distill", "--help").stdout
    for choices in ("<talk|kernel-features|random|herding|kcenter>", "<texts|vocab>", "<krr|gcn>", "<mean|cls>", "<auto|cpu|cuda>"):
        assert choices in text, choices
    assert "<bool>" not in text
    evaluate = run_cli("evaluate", "--help").stdout
    assert "<gnn|joint>" in evaluate and "<gcn|sgc|appnp|sage|mlp>" in evaluate and "<bool>" not in evaluate
    refused = run_cli("distill", "--dataset", "demo", "--method", "magic", "--out", "x")
    assert refused.exit_code == 2 and "'magic' is not one of" in refused.output


def test_joint_lora_changes_only_the_adapters_and_the_gnn(tiny_model_dir, monkeypatch):
    from test_evaluate import CPU, coreset_bundle

    from talk_cli.data import make_demo_tag
    from talk_cli.encode import EncodeSettings, encode_tag
    from talk_cli.evaluate import EvalSettings, joint

    demo = make_demo_tag()
    lm = load_language_model(str(tiny_model_dir))
    features = encode_tag(demo, lm, EncodeSettings(max_length=128)).features
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:20])
    copies, gnns = [], []
    original_copy, original_build = joint.trainable_copy, joint.build_model
    monkeypatch.setattr(joint, "trainable_copy", lambda *a, **k: copies.append(original_copy(*a, **k)) or copies[-1])

    def build(*args, **kwargs):
        gnn = original_build(*args, **kwargs)
        gnns.append((gnn, {name: value.clone() for name, value in gnn.state_dict().items()}))
        return gnn

    monkeypatch.setattr(joint, "build_model", build)
    pretrained = {name: value.clone() for name, value in lm.model.state_dict().items()}
    settings = EvalSettings(runs=1, epochs=4, probe_epochs=2, lm_lr=1e-2, lora_rank=2, refit=False)
    joint.evaluate_joint(bundle, demo, lm, features, settings, 128, CPU)
    tuned = copies[0].model.state_dict()
    adapters = {name for name in tuned if "lora_" in name}
    assert adapters and all(".query." in n or ".key." in n or ".value." in n for n in adapters)
    assert any(not torch.equal(tuned[n], torch.zeros_like(tuned[n])) for n in adapters if "lora_B" in n)  # B starts at 0
    for name, value in pretrained.items():  # peft keeps each adapted layer's own weight under base_layer
        kept = tuned.get(name, tuned.get(name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")))
        assert torch.equal(kept, value), name
    gnn, initial = gnns[0]
    assert any(not torch.equal(value, initial[name]) for name, value in gnn.state_dict().items())  # the GNN trained too
    assert weights_sha256(lm.model) == lm.identity.weights_sha256
    refused = run_cli("evaluate", "--full", "--dataset", "demo", "--protocol", "joint", "--lora-rank", "-1")
    assert refused.exit_code == 2 and "--lora-rank must not be negative" in refused.stderr


def test_the_paper_recipe_maps_the_official_configuration(tiny_model_dir, tmp_path):
    shown = json.loads(run_cli("distill", "--dataset", "demo", "--recipe", "paper", "--print-settings").stdout)
    assert (shown["pooling"], shown["seq_len"], shown["ridge"], shown["lr"], shown["lora_rank"]) == ("cls", 256, 1e-4, 5e-4, 4)
    assert (shown["init"], shown["invert_steps"]) == ("texts", 0)  # the official code starts from the seed texts
    out, paper = tmp_path / "paper", yaml.safe_load((REPO / "talk_cli" / "recipes" / "paper.yaml").read_text())
    short = recipe(tmp_path, **paper | {"inner_steps": 2})  # the paper's recipe with short inner rounds
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--recipe", short, "--seq-len", "8", "--max-length", "64",
                     "--size", "5", "--steps", "4", "--inner-every", "2", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.lm.pooling == "cls" and bundle.distillation.settings["lora_rank"] == 4
    joint = run_cli("evaluate", out, "--dataset", "demo", "--model", tiny_model_dir, "--protocol", "joint", "--lora-rank", "4", "--lm-lr", "1e-4",
                    "--runs", "1", "--epochs", "2", "--probe-epochs", "2", "--json", "--quiet")  # fmt: skip
    assert joint.exit_code == 0, joint.output
    assert json.loads(joint.stdout)["protocol"] == "joint"


# --- the LM named by what it is, no path of the author's machine ----------------------------------


def test_the_manifest_and_card_hold_no_absolute_path(demo_bundle, tiny_model_dir):
    manifest_text, card = (demo_bundle / "manifest.yaml").read_text(), (demo_bundle / "README.md").read_text()
    for path in (str(tiny_model_dir), str(demo_bundle), str(demo_bundle.parent)):
        assert path not in manifest_text and path not in card, path
    manifest = yaml.safe_load(manifest_text)
    assert manifest["lm"]["name"] == tiny_model_dir.name and "revision" not in manifest["lm"]  # unknown weights: the folder's name
    assert f"--model {tiny_model_dir.name}" in manifest["made"]["command"] and f"--out {demo_bundle.name}" in manifest["made"]["command"]


def test_a_known_model_is_recorded_by_hub_id_and_revision(tiny_model_dir, tmp_path, monkeypatch):
    from talk_cli.encode import known
    from talk_cli.encode.lm import load_language_model

    digest = load_language_model(str(tiny_model_dir)).identity.weights_sha256
    monkeypatch.setitem(known.KNOWN_MODELS, digest, known.KnownModel("someone/tiny-bert", "a" * 40, "b" * 64, "nowhere"))
    out = tmp_path / "b"
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--method", "random", "--ratio", "0.05", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert (bundle.lm.name, bundle.lm.revision) == ("someone/tiny-bert", "a" * 40)
    assert "`someone/tiny-bert` at revision `" + "a" * 40 in (out / "README.md").read_text()
    # The hub id is not reachable here: evaluating without --model says how to get it.
    refused = run_cli("evaluate", out, "--dataset", "demo", "--runs", "1", "--epochs", "1", "--quiet")
    assert refused.exit_code == 2 and "'someone/tiny-bert'" in refused.stderr and "--model" in refused.stderr


def test_an_unknown_lm_is_named_by_its_folder_and_the_default_by_its_hub_id(tiny_model_dir, monkeypatch):
    from talk_cli.encode import known
    from talk_cli.encode.lm import DEFAULT_MODEL, load_language_model

    monkeypatch.setattr(known, "KNOWN_MODELS", {})  # as where another library version hashes the weights differently
    assert load_language_model().identity.name == DEFAULT_MODEL  # the packaged default, not its folder's name
    monkeypatch.chdir(tiny_model_dir)
    assert load_language_model(".").identity.name == tiny_model_dir.name


@given(st.lists(st.text(min_size=1), max_size=6))
def test_a_recorded_command_has_no_absolute_path(arguments):
    words = shlex.split(portable_command(shlex.join(["talk", *arguments])))
    assert len(words) == len(arguments) + 1
    for before, after in zip(arguments, words[1:]):
        value = after.partition("=")[2] if before.startswith("--") else after
        original = before.partition("=")[2] if before.startswith("--") else before
        if original.startswith(("/", "~")):
            assert "/" not in value or value == "/", (before, after)  # only the last component is left
        elif "=" not in before:
            assert after == before  # only paths change


def test_a_recorded_command_keeps_a_paths_last_component():
    command = "talk distill --dataset /data/tags/cora --model=/home/me/models/mpnet/ --out ~/b --ratio 0.01"
    assert portable_command(command) == "talk distill --dataset cora --model=mpnet --out b --ratio 0.01"


def test_distill_lists_at_most_40_options_and_the_docs_list_every_recipe_key():
    import dataclasses
    import re

    from talk_cli.distill import DistillSettings

    shown = run_cli("distill", "--help")
    options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)", shown.stdout, flags=re.MULTILINE))  # a wrapped help line may start with one
    assert 30 < len(options) <= 40, options
    documented = (REPO / "docs" / "commands.md").read_text()
    recipe_only = [f.name for f in dataclasses.fields(DistillSettings) if not f.metadata.get("cli", True)]
    assert recipe_only and all(f"| `{name}` |" in documented for name in recipe_only)
    assert not any(f"--{name.replace('_', '-')} " in shown.stdout for name in recipe_only)
