"""`talk evaluate` (gnn protocol) on the demo TAG with the tiny random BERT."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from conftest import run_cli

from talk_cli import load_bundle
from talk_cli.bundle import write_bundle
from talk_cli.data import make_demo_tag
from talk_cli.distill import DistillOutcome, DistillSettings, make_bundle, run_distillation
from talk_cli.distill.coreset import induced_adjacency
from talk_cli.encode import EncodeSettings, encode_tag, load_language_model
from talk_cli.evaluate import EvalSettings, RealNodes, Training, evaluate_bundle, evaluate_full

CPU = torch.device("cpu")
FAST = EvalSettings(runs=3, epochs=60)


@pytest.fixture(scope="module")
def demo():
    return make_demo_tag()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory):
    # Module-scoped, so the autouse per-test cache is not there yet: encode into a cache of its own,
    # and leave the environment as it was for the modules after this one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALK_CACHE_DIR", str(tmp_path_factory.mktemp("eval-cache")))
        lm = load_language_model(str(tiny_model_dir))
        return lm, encode_tag(make_demo_tag(), lm).features


def coreset_bundle(tag, lm, features, nodes: torch.Tensor, labels: torch.Tensor | None = None):
    """A bundle made of real training nodes and their induced subgraph (as a coreset baseline would be)."""
    outcome = DistillOutcome(
        embeddings=torch.zeros(len(nodes), 2, lm.identity.hidden_size),
        attention_mask=torch.ones(len(nodes), 2, dtype=torch.int64),
        adjacency=induced_adjacency(tag, nodes),
        labels=tag.labels[nodes] if labels is None else labels,
        soft_labels=None,
        features=features[nodes],
        seed_nodes=nodes,
        best_step=0,
        best_val_accuracy=0.0,
    )
    return make_bundle(tag, lm, DistillSettings(size=len(nodes), ratio=None), outcome)


def test_all_training_nodes_match_the_full_reference_without_edges(demo, tiny, tmp_path):
    """With an MLP (edges unused), a coreset of every training node trains on exactly the data the
    full reference trains on, so the two must agree; any gap would be a pipeline bug."""
    lm, _ = tiny
    # no dropout: full-batch training then does not depend on the order of the training rows
    mlp = dataclasses.replace(FAST, architecture="mlp", epochs=100, dropout=0.0)
    plan = DistillSettings(method="random", ratio=1.0, max_length=64)
    features = encode_tag(demo, lm, EncodeSettings(max_length=64)).features  # the coreset's length
    bundle, _ = run_distillation(demo, lm, features, plan, CPU, tmp_path / "all")
    assert bundle.num_synthetic == int(demo.train_mask.sum())
    everything = evaluate_bundle(bundle, demo, features, mlp, CPU).as_dict()
    full = evaluate_full(demo, features, mlp, CPU).as_dict()
    assert full["val_accuracy_mean"] > 0.4  # above chance (0.2): the tiny model's features carry the topic words
    assert abs(everything["test_accuracy_mean"] - full["test_accuracy_mean"]) < 0.02, (everything, full)
    assert abs(everything["val_accuracy_mean"] - full["val_accuracy_mean"]) < 0.02, (everything, full)


def test_shuffled_labels_score_near_chance(demo, tiny):
    lm, features = tiny
    train = torch.nonzero(demo.train_mask).flatten()
    shuffled = demo.labels[train][torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    result = evaluate_bundle(coreset_bundle(demo, lm, features, train, shuffled), demo, features, FAST, CPU).as_dict()
    assert result["test_accuracy_mean"] < 0.2 + 0.15  # chance is 0.2 with five classes


def test_runs_are_reproducible_by_seed(demo, tiny):
    lm, features = tiny
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:20])
    a = evaluate_bundle(bundle, demo, features, FAST, CPU).as_dict()
    b = evaluate_bundle(bundle, demo, features, FAST, CPU).as_dict()
    c = evaluate_bundle(bundle, demo, features, dataclasses.replace(FAST, seed=7), CPU).as_dict()
    assert a == {**b, "train_seconds_mean": a["train_seconds_mean"]}
    assert a["test_accuracy_mean"] != c["test_accuracy_mean"] or a["test_macro_f1_mean"] != c["test_macro_f1_mean"]


@pytest.fixture
def demo_bundle(demo, tiny, tmp_path):
    lm, features = tiny
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    return write_bundle(bundle, tmp_path / "b")


def test_cli_evaluate_reports_percent_of_full_and_writes_back(demo_bundle, tiny_model_dir):
    common = ["--dataset", "demo", "--model", tiny_model_dir, "--runs", "2", "--epochs", "30", "--json"]
    full = run_cli("evaluate", "--full", *common)
    assert full.exit_code == 0, full.output
    result = run_cli("evaluate", demo_bundle, *common, "--write-back")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    reference = json.loads(full.stdout)["test_accuracy_mean"]
    assert payload["percent_of_full"] == pytest.approx(100 * payload["test_accuracy_mean"] / reference, abs=0.01)
    stored = load_bundle(demo_bundle).evaluation  # checksum still verifies after write-back
    assert stored["gnn-gcn-demo"]["test_accuracy_mean"] == payload["test_accuracy_mean"]


def test_a_full_reference_reads_the_texts_at_the_length_talk_distill_uses(tiny_model_dir, tmp_path):
    """A TAG with a shipped recipe (arxiv_2023's cuts texts to 64 tokens) gets its reference at that
    length, where bundles distilled from it look for it; --max-length still wins."""
    from conftest import write_tag_folder

    folder = write_tag_folder(tmp_path / "arxiv_2023")
    common = ["evaluate", "--full", "--dataset", folder, "--model", tiny_model_dir, "--runs", "1", "--epochs", "2"]
    recipe_length = run_cli(*common)
    assert recipe_length.exit_code == 0 and "len64" in recipe_length.stderr, recipe_length.output
    given = run_cli(*common, "--max-length", "32")
    assert given.exit_code == 0 and "len32" in given.stderr, given.output


def test_cli_refuses_a_bundle_of_other_data_or_lm(demo_bundle, tiny_model_dir, tmp_path):
    from conftest import write_tag_folder

    other = write_tag_folder(tmp_path / "other")
    result = run_cli("evaluate", demo_bundle, "--dataset", other, "--model", tiny_model_dir, "--runs", "1", "--epochs", "2")
    assert result.exit_code == 2 and "dataset hash differs" in result.stderr and "--allow-mismatch" in result.stderr
    resplit = run_cli("evaluate", demo_bundle, "--dataset", "demo", "--split-seed", "3", "--model", tiny_model_dir, "--runs", "1")
    assert resplit.exit_code == 2 and "split differs" in resplit.stderr


def test_cli_refuses_another_lm_unless_allowed(demo_bundle, tiny_model_dir, tmp_path):
    from conftest import TINY_VOCAB
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    other = tmp_path / "other-lm"
    BertModel(config).save_pretrained(other)
    load_language_model(str(tiny_model_dir)).tokenizer.save_pretrained(other)
    args = ["evaluate", demo_bundle, "--dataset", "demo", "--model", other, "--runs", "1", "--epochs", "2"]
    refused = run_cli(*args)
    assert refused.exit_code == 2 and "LM weights differ" in refused.stderr
    allowed = run_cli(*args, "--allow-mismatch")
    assert allowed.exit_code == 0 and "warning: LM weights differ" in allowed.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "demo"], "give a BUNDLE to evaluate, or --full"),
        (["--dataset", "demo", "--full", "--model-type", "transformer"], "'transformer' is not one of 'gcn', 'sgc', 'appnp', 'sage', 'mlp'"),
        (["--dataset", "demo", "--full", "--protocol", "both"], "'both' is not one of 'gnn', 'joint'"),
        (["--dataset", "demo", "--full", "--runs", "0"], "--runs, --epochs, --eval-every and --batch-size must be at least 1"),
        (["--dataset", "demo", "--full", "--lm-lr", "-1"], "--lm-lr and --weight-decay must not be negative"),
        (["--dataset", "demo", "--full", "--lr", "0"], "--lr must be positive"),
        (["--dataset", "demo", "--full", "--dropout", "1"], "--dropout must be in [0, 1)"),
        (["--dataset", "demo", "--full", "--hidden", "0"], "--hidden must be at least 1"),
        (["--dataset", "demo", "--full", "--probe-epochs", "-1"], "--probe-epochs must not be negative"),
        (["--dataset", "demo", "--full", "--protocol", "joint", "--finetune-lr", "-1"], "--finetune-lr must not be negative"),
    ],
)
def test_cli_bad_options(args, message):
    result = run_cli("evaluate", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_joint_protocol_fine_tunes_a_copy_and_leaves_the_callers_lm(demo, tiny, tmp_path):
    from talk_cli.encode.lm import weights_sha256
    from talk_cli.evaluate.joint import evaluate_joint

    lm, features = tiny
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    summary = evaluate_joint(bundle, demo, lm, features, EvalSettings(runs=2, epochs=5), 128, CPU).as_dict()
    assert summary["runs"] == 2 and 0 <= summary["test_accuracy_mean"] <= 1
    assert weights_sha256(lm.model) == lm.identity.weights_sha256  # the caller's LM is left as it was


def test_joint_runs_record_the_probe_and_the_best_fine_tuned_validation(demo, tiny):
    from talk_cli.evaluate.joint import evaluate_joint

    lm, features = tiny
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    probed = evaluate_joint(bundle, demo, lm, features, EvalSettings(runs=2, epochs=3, probe_epochs=20, lm_lr=1e-3), 128, CPU)
    for run in probed.runs:  # the kept epoch is whichever of the two was better, the probe winning ties
        assert run.val_accuracy == max(run.start_val, run.trained_val)
        assert (run.best_epoch == 0) == (run.start_val >= run.trained_val)
    summary = probed.as_dict()
    assert summary["probe_val_mean"] == pytest.approx(sum(r.start_val for r in probed.runs) / 2)
    assert summary["fine_tuned_val_mean"] == pytest.approx(sum(r.trained_val for r in probed.runs) / 2)
    unprobed = evaluate_joint(bundle, demo, lm, features, EvalSettings(runs=1, epochs=2, probe_epochs=0), 128, CPU)
    assert unprobed.runs[0].start_val is None and "probe_val_mean" not in unprobed.as_dict()


def test_joint_full_reference_trains_a_copy_of_the_lm_through_the_gnn(tmp_path, tiny_model_dir, monkeypatch):
    """On a TAG whose class shows in one word per text, LM + GNN trained jointly learn it."""
    import random

    from conftest import write_tag_folder

    from talk_cli.data import load_tag
    from talk_cli.encode.lm import weights_sha256
    from talk_cli.evaluate import joint
    from talk_cli.evaluate.joint import evaluate_joint_full

    copies = []  # the trainable copies each run fine-tunes

    def recorded(*args, **kwargs):
        copies.append(trainable_copy(*args, **kwargs))
        return copies[-1]

    trainable_copy = joint.trainable_copy
    monkeypatch.setattr(joint, "trainable_copy", recorded)

    rng = random.Random(0)
    topics, filler = [["galaxy", "star", "orbit", "planet"], ["recipe", "oven", "spice", "dough"]], ["the", "a", "of", "we", "study", "show"]
    nodes = [{"id": i, "label": i % 2, "text": " ".join(rng.choices(filler, k=6) + [rng.choice(topics[i % 2])])} for i in range(200)]
    edges = [(i, (i + 2 * rng.randint(1, 10)) % 200) for i in range(200)]
    tag = load_tag(str(write_tag_folder(tmp_path / "topics", nodes=nodes, edges=edges)))
    lm = load_language_model(str(tiny_model_dir))
    features = encode_tag(tag, lm, EncodeSettings(max_length=32)).features
    seen, progress = [], []
    settings = EvalSettings(runs=1, epochs=8, batch_size=8, lm_lr=1e-3)

    def on_epoch(epochs: float) -> None:
        progress.append(epochs)
        seen.append(weights_sha256(copies[-1].model))

    summary = evaluate_joint_full(tag, lm, features, settings, 32, CPU, on_epoch=on_epoch)
    assert all(digest != lm.identity.weights_sha256 for digest in seen)  # the copy learned during training
    # Progress comes batch by batch, as fractions of an epoch that add up to the epochs trained.
    assert len(progress) == settings.epochs * math.ceil(int(tag.train_mask.sum()) / settings.batch_size)
    assert sum(progress) == pytest.approx(settings.epochs)
    assert weights_sha256(lm.model) == lm.identity.weights_sha256  # while the caller's LM never changed
    assert summary.runs[0].test_accuracy >= 0.85  # two balanced classes: chance is 0.5


def test_a_joint_result_is_compared_with_the_full_data_trained_at_its_own_lm_rate(demo, tiny):
    from talk_cli.evaluate import reference_key, run_evaluation, training_defaults
    from talk_cli.provenance import Provenance

    lm, features = tiny
    full_settings = EvalSettings(runs=1, **training_defaults("joint", True) | {"epochs": 1})
    reference = run_evaluation(demo, lm, features, None, full_settings, "joint", 128, CPU).result
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    bundle_settings = EvalSettings(runs=1, **training_defaults("joint", False) | {"epochs": 2, "eval_every": 1})
    assert bundle_settings.lm_lr != full_settings.lm_lr
    evaluation = run_evaluation(demo, lm, features, bundle, bundle_settings, "joint", 128, CPU)
    assert evaluation.reference == reference and evaluation.reference_cached
    other_model = dataclasses.replace(bundle_settings, hidden=32)  # another GNN is another reference
    assert run_evaluation(demo, lm, features, bundle, other_model, "joint", 128, CPU).reference is None
    unprobed = dataclasses.replace(bundle_settings, probe_epochs=0)  # the full data keeps its own probe, as its own LM rate
    assert run_evaluation(demo, lm, features, bundle, unprobed, "joint", 128, CPU).reference == reference
    provenance = Provenance.of(demo, lm.identity, 128)  # but a reference trained without the probe is another one
    assert reference_key(provenance, full_settings, "joint") != reference_key(provenance, dataclasses.replace(full_settings, probe_epochs=0), "joint")
    slower_head = dataclasses.replace(full_settings, finetune_lr=1e-3)  # the GNN's fine-tuning rate makes another joint reference
    assert reference_key(provenance, full_settings, "joint") != reference_key(provenance, slower_head, "joint")
    assert reference_key(provenance, full_settings) == reference_key(provenance, slower_head)  # but not another frozen one
    unprobed_full = dataclasses.replace(full_settings, probe_epochs=0)  # without a probe the rate is never used
    assert reference_key(provenance, unprobed_full, "joint") == reference_key(provenance, dataclasses.replace(unprobed_full, finetune_lr=1e-3), "joint")


@pytest.mark.parametrize("full", [True, False])
def test_a_refitted_check_of_an_unchanged_lm_is_the_probe_again(demo, tiny, full):
    """A refitted check fits a fresh GNN as the probe was fitted, on the current LM's features: with
    the LM left as it was (LM rate 0), every check reproduces the probe, and epoch 0 is kept. The
    GNN fine-tuned alongside still moves, so classifying with it (--no-refit) does not."""
    import dataclasses

    from talk_cli.encode.lm import encode_embeddings
    from talk_cli.evaluate.joint import evaluate_joint, evaluate_joint_full

    lm, features = tiny
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    bundle.token_embeddings = torch.randn_like(bundle.token_embeddings)
    with torch.no_grad():  # the bundle's features are what its token embeddings read through the LM give
        bundle.features = encode_embeddings(lm, bundle.token_embeddings, bundle.attention_mask)
    settings = EvalSettings(runs=2, epochs=3, eval_every=1, lm_lr=0.0, finetune_lr=0.05, probe_epochs=15)

    def runs(settings):
        return (evaluate_joint_full(demo, lm, features, settings, 128, CPU) if full else evaluate_joint(bundle, demo, lm, features, settings, 128, CPU)).runs

    for run in runs(settings):
        assert run.trained_val == pytest.approx(run.start_val) and run.best_epoch == 0
    co_trained = runs(dataclasses.replace(settings, refit=False))
    assert any(run.trained_val != pytest.approx(run.start_val) for run in co_trained)


@pytest.mark.parametrize("full", [True, False])
def test_joint_model_selection_never_reads_test_labels(demo, tiny, full):
    import dataclasses

    from talk_cli.evaluate.joint import evaluate_joint, evaluate_joint_full

    lm, features = tiny
    settings = EvalSettings(runs=1, epochs=4, eval_every=1, lm_lr=1e-3)
    swapped_labels = demo.labels.clone()
    test = torch.nonzero(demo.test_mask).flatten()
    swapped_labels[test] = (swapped_labels[test] + 1) % demo.num_classes
    swapped = dataclasses.replace(demo, labels=swapped_labels)
    bundle = coreset_bundle(demo, lm, features, torch.nonzero(demo.train_mask).flatten()[:30])
    runs = [
        (evaluate_joint_full(tag, lm, features, settings, 128, CPU) if full else evaluate_joint(bundle, tag, lm, features, settings, 128, CPU)).runs[0]
        for tag in (demo, swapped)
    ]
    assert (runs[0].best_epoch, runs[0].val_accuracy) == (runs[1].best_epoch, runs[1].val_accuracy)
    assert runs[0].test_accuracy != runs[1].test_accuracy  # the swap did change what the test labels say


def test_the_probe_leaves_the_gnn_at_its_best_validation_state(demo, tiny):
    from talk_cli.evaluate import build_model
    from talk_cli.gnn.train import accuracy, probe

    _, features = tiny
    real = RealNodes.of(demo, features, CPU)
    train = torch.nonzero(demo.train_mask).flatten()[:20]  # few rows: validation peaks before the last epoch
    training = Training(real.graph, train, demo.labels[train])
    torch.manual_seed(0)
    model = build_model("gcn", features.shape[1], demo.num_classes, 16, 0.5)
    untouched = {name: value.clone() for name, value in model.state_dict().items()}
    assert probe(model, training, real, EvalSettings(probe_epochs=0))[0] < 0  # no probe: no candidate, no training
    assert all(torch.equal(value, untouched[name]) for name, value in model.state_dict().items())
    val, epoch, predicted = probe(model, training, real, EvalSettings(probe_epochs=80))
    model.eval()
    with torch.no_grad():
        now = model(real.graph).argmax(dim=1)
    assert epoch == 0 and val > 1 / demo.num_classes
    assert torch.equal(now, predicted) and accuracy(now, real.labels, real.val_rows) == val


def test_the_probed_gnn_is_fine_tuned_at_its_own_rate(demo, tiny):
    """After the probe the GNN's Adam runs at --finetune-lr (the LM's at --lm-lr); without a
    probe there is nothing to keep, and the GNN trains at --lr throughout."""
    from talk_cli.evaluate.gnn import full_training
    from talk_cli.evaluate.joint import JointRuns

    lm, features = tiny
    real = RealNodes.of(demo, features, CPU)
    training = full_training(demo, real)
    probed = EvalSettings(lr=0.02, lm_lr=3e-6, finetune_lr=4e-4, probe_epochs=5)
    for settings, rates in [(probed, [3e-6, 4e-4]), (dataclasses.replace(probed, probe_epochs=0), [3e-6, 0.02])]:
        runs = JointRuns(lm, demo.num_classes, settings, CPU)
        _, _, optimizer, _ = runs.start(0, training, real)
        assert [group["lr"] for group in optimizer.param_groups] == rates


@pytest.mark.parametrize("architecture", ["gcn", "sage", "sgc"])
def test_a_k_hop_neighbourhood_gives_its_nodes_the_whole_graphs_outputs(architecture):
    from talk_cli.evaluate import build_model
    from talk_cli.gnn.models import RECEPTIVE_HOPS
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph(nodes=40, edges=60)
    graph = Graph.from_edges(torch.randn(40, 6), index, weight)
    model = build_model(architecture, 6, 3, hidden=5).eval()
    nodes = torch.tensor([7, 3, 21])
    subset, neighbourhood = graph.neighbourhood(nodes, RECEPTIVE_HOPS[architecture])
    assert torch.equal(subset[:3], nodes) and len(subset) < 40
    with torch.no_grad():
        assert torch.allclose(model(neighbourhood)[:3], model(graph)[nodes], atol=1e-5)
        # One hop fewer is not enough: the outputs differ (the test can fail).
        _, too_small = graph.neighbourhood(nodes, RECEPTIVE_HOPS[architecture] - 1)
        assert not torch.allclose(model(too_small)[:3], model(graph)[nodes], atol=1e-5)


def test_a_predicting_gcn_gives_its_nodes_the_whole_graphs_outputs_from_one_hop():
    """`Graph.predicting` keeps only the 1-hop neighbourhood, with the whole graph's ÂX rows."""
    from talk_cli.evaluate import build_model
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph(nodes=40, edges=60)
    graph = Graph.from_edges(torch.randn(40, 6), index, weight)
    model = build_model("gcn", 6, 3, hidden=5).eval()
    nodes = torch.tensor([7, 3, 21])
    subset, small = graph.predicting(nodes)
    assert torch.equal(subset[:3], nodes) and len(subset) < len(graph.neighbourhood(nodes, 2)[0])
    with torch.no_grad():
        assert torch.allclose(model(small)[:3], model(graph)[nodes], atol=1e-5)
        # The subgraph's own ÂX is wrong at its border (the test can fail).
        _, plain = graph.neighbourhood(nodes, 1)
        assert not torch.allclose(model(plain)[:3], model(graph)[nodes], atol=1e-5)


def test_gcn_selection_on_a_validation_sample_scores_those_nodes_exactly(demo, tiny):
    """`select_nodes`: a seeded sample of the validation nodes, scored as on the whole graph; all
    of them (the same object as `RealNodes.of`) when there are no more than the limit."""
    from talk_cli.gnn.train import synthetic_training, trainer, validation_run

    _, features = tiny
    val = torch.nonzero(demo.val_mask).flatten()
    assert torch.equal(RealNodes.validation_sample(demo, features, CPU, len(val), seed=0).val_rows, val)
    sample = RealNodes.validation_sample(demo, features, CPU, 7, seed=3)
    picked = val[torch.randperm(len(val), generator=torch.Generator().manual_seed(3))[:7]].sort().values
    assert len(sample.val_rows) == 7 and len(sample.test_rows) == 0 and len(sample.labels) < demo.num_nodes
    assert torch.equal(sample.labels[:7], demo.labels[picked])
    whole = RealNodes.of(demo, features, CPU)
    rows = torch.nonzero(demo.train_mask).flatten()[:12]
    training = synthetic_training(features[rows], torch.zeros(12, 12), demo.labels[rows])
    settings = EvalSettings(runs=1, eval_every=10, epochs=30)

    def trained(real: RealNodes) -> torch.Tensor:
        train_epoch, predict = trainer(training, real, settings, seed=1)  # seeds dropout too
        for _ in range(5):
            train_epoch()
        return predict()

    assert torch.equal(trained(sample)[:7], trained(whole)[picked])
    # Scored on the sample, not on every validation node (the two differ on this graph).
    only_sample = dataclasses.replace(whole, val_rows=picked)
    assert validation_run(training, sample, settings, seed=1) == validation_run(training, only_sample, settings, seed=1)


def random_weighted_graph(nodes: int = 12, edges: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric weighted edge list, each undirected edge in both directions."""
    from torch_geometric.utils import coalesce, to_undirected

    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, nodes, (2, edges), generator=g)
    pairs = pairs[:, pairs[0] != pairs[1]]
    index, weight = to_undirected(pairs, torch.rand(pairs.shape[1], generator=g) + 0.1)
    return coalesce(index, weight)


def test_prepared_graph_is_the_gcn_normalised_adjacency():
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph()
    graph = Graph.from_edges(torch.randn(12, 4), index, weight)
    dense = torch.zeros(12, 12)
    dense[index[0], index[1]] = weight
    dense += torch.eye(12)
    scale = dense.sum(dim=1).pow(-0.5)
    assert torch.allclose(graph.normalized.to_dense(), scale[:, None] * dense * scale[None, :], atol=1e-6)
    assert torch.equal(graph.pattern.to_dense(), (dense - torch.eye(12) > 0).float())


@pytest.mark.parametrize("architecture", ["gcn", "sgc", "appnp", "sage"])
def test_models_on_a_prepared_graph_match_pyg_on_the_edge_list(architecture):
    """The prepared CSR matrices are a speed-up only: the same weights give the same logits as
    PyG's layers given the edge list and weights (which normalise it themselves)."""
    from torch_geometric.nn import APPNP, GCNConv, SAGEConv, SGConv

    from talk_cli.evaluate import build_model
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph()
    x = torch.randn(12, 6)
    model = build_model(architecture, 6, 3, hidden=5).eval()
    with torch.no_grad():
        prepared = model(Graph.from_edges(x, index, weight))
        if architecture == "gcn":
            first, second = GCNConv(6, 5), GCNConv(5, 3)
            first.load_state_dict(model.first.state_dict())
            second.load_state_dict(model.second.state_dict())
            reference = second(torch.relu(first(x, index, weight)), index, weight)
        elif architecture == "sgc":
            conv = SGConv(6, 3, K=2)
            conv.lin.load_state_dict(model.linear.state_dict())
            reference = conv(x, index, weight)
        elif architecture == "appnp":
            reference = APPNP(K=10, alpha=0.1)(model.mlp(x), index, weight)
        else:
            first, second = SAGEConv(6, 5), SAGEConv(5, 3)
            first.load_state_dict(model.first.state_dict())
            second.load_state_dict(model.second.state_dict())
            reference = second(torch.relu(first(x, index)), index)
    assert torch.allclose(prepared, reference, atol=1e-5)


def test_a_predicting_gcn_starts_from_the_propagation_kept_with_the_graph():
    """Predicting (eval, no gradient), the GCN's first layer is (ÂX)W from ÂX kept with the graph,
    the same logits as the training path's Â(XW); a graph with new features computes its own."""
    from talk_cli.evaluate import build_model
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph()
    x = torch.randn(12, 6)
    model = build_model("gcn", 6, 3, hidden=5).eval()
    graph = Graph.from_edges(x, index, weight)
    for features in (x, 2 * x):
        current = graph.with_features(features)
        with torch.enable_grad():
            direct = model(current)  # Â(XW), as in training
        with torch.no_grad():
            kept = model(current)
        assert torch.allclose(direct, kept, atol=1e-5) and "propagated" in vars(current)
        assert torch.allclose(current.propagated, graph.normalized @ features, atol=1e-6)


def test_sgc_on_fixed_features_starts_from_the_two_hops_kept_with_the_graph():
    """On features that need no gradient SGC reads Â²X kept with the graph, the same logits as the
    two sparse products; on features being learnt it computes them, so the gradient reaches X."""
    from talk_cli.evaluate import build_model
    from talk_cli.graph import Graph

    index, weight = random_weighted_graph()
    x = torch.randn(12, 6)
    model = build_model("sgc", 6, 3)
    graph = Graph.from_edges(x, index, weight)
    two_hops = graph.normalized @ (graph.normalized @ x)
    assert torch.allclose(model(graph), model.linear(two_hops), atol=1e-5) and "propagated_twice" in vars(graph)
    learnt = graph.with_features(x.clone().requires_grad_(True))
    model(learnt).sum().backward()
    assert learnt.x.grad is not None and learnt.x.grad.abs().sum() > 0
    assert "propagated_twice" not in vars(learnt)
