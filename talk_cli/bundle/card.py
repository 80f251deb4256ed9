"""The bundle's dataset card (`README.md`): YAML front matter that dataset hubs read, then a
short account in words of what the bundle is, how it was made, how well it trains, how to load
it and what it does not hold. It is written from the manifest and the tensors, so it never says
anything they do not; `talk evaluate --write-back` rewrites it with the new results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from talk_cli.bundle.bundle import Bundle

CARD_FILE = "README.md"
DEFAULT_LICENSE = "other"
DEFAULT_LICENSE_NOTE = (
    "The bundle is derived from the source dataset (its nodes, labels and graph shaped the synthetic set, and a coreset "
    "bundle holds real texts), so the source dataset's licence and terms apply to it."
)
TASK_CATEGORIES = ["graph-ml", "text-classification"]


def size_category(n: int) -> str:
    """The dataset hubs' size buckets."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def front_matter(manifest: dict[str, Any], license: str) -> dict[str, Any]:
    dataset, distillation = manifest["dataset"], manifest["distillation"]
    share = f"{100 * distillation['ratio']:g}% of the training nodes" if distillation["ratio"] is not None else "size given"
    return {
        "license": license,
        "pretty_name": f"{dataset['name']} distilled by {distillation['method']} ({distillation['num_synthetic']} synthetic nodes, {share})",
        "task_categories": TASK_CATEGORIES,
        "size_categories": [size_category(distillation["num_synthetic"])],
        "tags": ["talk-bundle", "graph-condensation", "dataset-distillation", "text-attributed-graph", distillation["method"]],
        "source_datasets": [dataset["name"]],
    }


def privacy_sentence(privacy: dict, num_synthetic: int) -> str:
    """One sentence: whether a bundle holds real training text, with the measured overlap."""
    overlap = (
        f"{privacy['mean_ngram_overlap']:.1%} of their word {privacy['ngram']}-grams with the dataset's texts on average "
        f"(at most {privacy['max_ngram_overlap']:.1%}, node {privacy['worst_node']})"
    )
    if privacy["start"] == "real nodes":
        return f"This bundle holds real training texts: its nodes are real training nodes, each stored with its own text (decoded, they share {overlap})."
    if privacy["nodes_holding_text"]:
        return (
            f"This bundle holds real training text: decoded to the nearest vocabulary tokens, {privacy['nodes_holding_text']} of its "
            f"{num_synthetic} synthetic nodes read back real text; they share {overlap}."
        )
    return f"This bundle holds no real training text: decoded to the nearest vocabulary tokens, its synthetic nodes share {overlap}."


def text_lines(manifest: dict[str, Any], num_synthetic: int) -> list[str]:
    """What the bundle holds of the real texts (measured when it was made), and which real nodes
    the manifest names."""
    distillation = manifest["distillation"]
    run = distillation["settings"].get("run", {})
    lines = [f"- {privacy_sentence(manifest['privacy'], num_synthetic)}"] if "privacy" in manifest else []
    if "nodes" in distillation["settings"]:
        ids = distillation["settings"]["nodes"]
        lines.append(f"- The manifest names the {len(ids)} real training nodes it holds (`distillation.settings.nodes`): {', '.join(map(str, ids))}.")
    elif "seed_nodes" in run:
        ids = run["seed_nodes"]
        lines.append(
            f"- The manifest names the {len(ids)} real training nodes whose features started the synthetic set "
            f"(`distillation.settings.run.seed_nodes`): {', '.join(map(str, ids))}."
        )
    return lines


def evaluation_rows(evaluation: dict[str, Any]) -> list[str]:
    rows = []
    for entry in evaluation.values():
        full = (
            f"{100 * entry['full_test_accuracy_mean']:.2f}% ({entry.get('full_runs', '?')} runs)"
            if entry.get("full_test_accuracy_mean") is not None
            else "not computed"
        )
        share = f"{entry['percent_of_full']:.1f}%" if entry.get("percent_of_full") is not None else "-"
        rows.append(
            f"| {entry['protocol']} | {entry['model_type']} | {100 * entry['test_accuracy_mean']:.2f} ± {100 * entry['test_accuracy_std']:.2f}% "
            f"| {entry['runs']} | {full} | {share} | {entry.get('date', '-')} |"
        )
    return rows


def render_card(bundle: Bundle, manifest: dict[str, Any]) -> str:
    """The card's text for `bundle`, whose manifest (its `card` entry aside) is `manifest`."""
    dataset, lm, distillation, made = manifest["dataset"], manifest["lm"], manifest["distillation"], manifest.get("made", {})
    license = bundle.license
    settings = {k: v for k, v in distillation["settings"].items() if k not in ("run", "nodes")}
    from talk_cli.bundle.describe import graph_stats, structure  # here: the CLI names DEFAULT_LICENSE before torch is needed

    counts = bundle.labels.cpu().bincount(minlength=dataset["num_classes"]).tolist()
    per_class = ", ".join(f"{name} {count}" for name, count in zip(dataset["label_names"], counts))
    denominator = distillation.get("ratio_denominator", dataset["num_train"])
    ratio = (
        f"ratio {distillation['ratio']} of the {denominator} training nodes (the ratio counts training nodes only, not validation or test nodes)"
        if distillation["ratio"] is not None
        else f"a size given directly ({distillation['num_synthetic']} nodes; the source has {denominator} training nodes)"
    )
    evaluation = evaluation_rows(manifest.get("evaluation", {}))
    lines = [
        "---",
        yaml.safe_dump(front_matter(manifest, license), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {dataset['name']}: {distillation['num_synthetic']} synthetic nodes ({distillation['method']})",
        "",
        f"A bundle written by talk_cli {manifest['tool']['version']} (format {manifest['format_version']}): a small synthetic graph that trains "
        f"a node classifier for `{dataset['name']}` ({dataset['num_nodes']} nodes, {dataset['num_classes']} classes) in place of its training nodes.",
        "",
        "## What it is",
        "",
        *text_lines(manifest, distillation["num_synthetic"]),
        f"- Method: `{distillation['method']}`; {ratio}.",
        f"- Synthetic nodes per class: {per_class}.",
        f"- Each node is a sequence of {manifest['tensors']['inventory']['token_embeddings']['shape'][1]} input-token embeddings for the LM below "
        "(`token_embeddings`, with `attention_mask`), its pooled LM feature (`features`) and its class (`labels`).",
        f"- Edges: {structure(bundle, graph_stats(bundle.adjacency)['num_edges'])}.",
        f"- Licence: `{license}`." + (f" {DEFAULT_LICENSE_NOTE}" if license == DEFAULT_LICENSE else ""),
        "",
        "## How it was made",
        "",
        f"- Command: `{made['command']}`" if made.get("command") else "- Command: not recorded (made from Python)",
        f"- Source: `{dataset['name']}`, content sha256 `{dataset['content_hash']}`, split {dataset['split']}.",
        f"- LM: `{lm['name']}`"
        + (f" at revision `{lm['revision']}`" if lm.get("revision") else "")
        + f", weights sha256 `{lm['weights_sha256']}`, tokenizer {lm['tokenizer']}, {lm['pooling']} pooling, "
        f"real texts read at {lm['max_length']} tokens.",
        f"- Seed {distillation['seed']}; settings: `{yaml.safe_dump(settings, default_flow_style=True, width=10_000).strip()}`",
    ]
    run = distillation["settings"].get("run", {})
    if run.get("warm_start"):
        lines.append(f"- {warm_start_sentence(run['warm_start'], run['val_accuracy'], settings.get('select', 'gcn'))}")
    if made:
        lines += [
            f"- Machine: {made.get('device_name', '?')} ({made.get('device', '?')}); python {made.get('python', '?')}, torch {made.get('torch', '?')}, "
            f"transformers {made.get('transformers', '?')}, talk_cli {made.get('talk_cli', '?')}.",
            f"- Time: {made.get('seconds', 0):.1f} s of distillation, features cached; peak memory {made.get('peak_rss_mib') or 0:.0f} MiB; "
            f"written {manifest['created']}.",
        ]
    lines += ["", "## How well it trains", ""]
    if evaluation:
        lines += [
            "Test accuracy on the real graph's test nodes of a model trained on this bundle (epochs chosen on the real validation "
            "nodes). `gnn`: the LM frozen; `joint`: the LM fine-tuned with the GNN. % of full divides by the reference trained on "
            "every training node under the same protocol.",
            "",
            "| protocol | model | test accuracy | runs | full-data reference | % of full | date |",
            "|---|---|---:|---:|---:|---:|---|",
            *evaluation,
        ]
    else:
        lines.append(
            f"Not measured yet: `talk evaluate BUNDLE --dataset {dataset['name']} --write-back` (and `--protocol joint`) trains on it, "
            "tests on the real graph and records the result here."
        )
    lines += [
        "",
        "## How to load it",
        "",
        "With the command line: `talk inspect BUNDLE --verify` checks every checksum and rule; "
        f"`talk evaluate BUNDLE --dataset {dataset['name']}` trains a GNN on it and tests it on the real graph.",
        "",
        "With `talk_cli` in Python:",
        "",
        "```python",
        "from talk_cli import load_bundle",
        "bundle = load_bundle('BUNDLE')  # verifies checksums, shapes and values",
        "data = bundle.to_pyg()          # torch_geometric Data: x, edge_index, y, token_embeddings, attention_mask",
        "```",
        "",
        "With only `safetensors`, `numpy` and `yaml` (no torch, no talk_cli):",
        "",
        "```python",
        "import hashlib, yaml",
        "from safetensors.numpy import load_file",
        "manifest = yaml.safe_load(open('BUNDLE/manifest.yaml'))",
        "path = 'BUNDLE/' + manifest['tensors']['file']",
        "assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == manifest['tensors']['sha256']",
        "tensors = load_file(path)  # numpy arrays: token_embeddings, attention_mask, adjacency, labels, features",
        "```",
        "",
        "## Limitations",
        "",
        f"- The token embeddings mean something only to `{lm['name']}` with weights sha256 `{lm['weights_sha256'][:16]}…`; another LM reads them as noise.",
        "- `features` are that LM's pooled output of the token embeddings"
        + ("." if bundle.distillation.features_from_tokens else f", except for `{distillation['method']}`, whose features were learned directly."),
        f"- It stands in for the training nodes only: testing needs the real `{dataset['name']}` graph with the same split ({dataset['split']}).",
        "- Holding no real text is not differential privacy: the synthetic set was fitted to the real graph, and someone who has "
        "the real graph can still test whether a node was in the training set (docs/privacy.md).",
    ]
    if evaluation:
        lines.append("- The accuracy above was measured on one machine; repeated on others it has varied by about half a point.")
    lines.append("")
    return "\n".join(lines)


def card_front_matter(text: str) -> dict[str, Any]:
    """The parsed YAML front matter of a card (ValueError when it has none or it is not a mapping)."""
    if not text.startswith("---\n"):
        raise ValueError("does not start with a '---' line of YAML front matter")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("its YAML front matter has no closing '---' line")
    try:
        matter = yaml.safe_load(text[4:end])
    except yaml.YAMLError as err:
        raise ValueError(f"its front matter is not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(matter, dict):
        raise ValueError("its front matter is not a YAML mapping")
    return matter


def warm_start_sentence(warm: dict, shipped: float, select: str) -> str:
    """What a talk run's warm start reached (free set, inverted set, cosine between them) and how
    the shipped set validates, saying so when it is below the free set it started from."""
    kept = (
        f"after {warm['inversion_best_step']} of its {warm['inversion_steps']} steps"
        if "inversion_best_step" in warm
        else f"after {warm['inversion_steps']} steps"
    )
    text = (
        f"Warm start: the free feature set validated {warm['free_val_accuracy']:.4f} ({select.upper()} on the real validation nodes); "
        f"the inversion's token set {kept} (cosine {warm['inversion_cosine']:.3f} with it) validated {warm['inverted_val_accuracy']:.4f}; "
        f"the shipped set validates {shipped:.4f}"
    )
    gap = warm["free_val_accuracy"] - shipped
    if gap > 0:
        text += f", {100 * gap:.1f} points below the free set it started from (`--method kernel-features` ships such a set, without token sequences)"
    return text + "."
