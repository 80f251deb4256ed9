"""TaLK distillation on the demo TAG with the tiny random BERT."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from conftest import recipe, run_cli

from talk_cli import load_bundle
from talk_cli.data import make_demo_tag
from talk_cli.distill import Distiller, DistillSettings, distill, run_distillation
from talk_cli.distill.synthetic import allocate, allocation_power, class_allocation, learned_adjacency, synthetic_size
from talk_cli.encode import EncodeSettings, encode_tag, encode_texts, load_language_model
from talk_cli.encode.lm import encode_embeddings, weights_sha256
from talk_cli.errors import SettingsError
from talk_cli.kernel import RealGraphSide

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def demo():
    return make_demo_tag()


@pytest.fixture
def tiny_lm(tiny_model_dir):
    return load_language_model(str(tiny_model_dir))


@pytest.fixture
def demo_features(demo, tiny_lm):
    return encode_tag(demo, tiny_lm).features


def settings(**change) -> DistillSettings:
    """A small run of the KRR loop on the tokens alone (no warm start, KRR selection), which is what
    most tests here examine; the tests of the warm start and of GCN selection turn them on. The
    tokens start from the seed texts: without the warm start, a start from random vocabulary tokens
    gives the loop little to improve on a tiny random LM."""
    base = dict(
        size=10,
        ratio=None,
        steps=6,
        seq_len=8,
        eval_every=2,
        lm_chunk=3,
        krr_batch=0,
        structure="identity",
        invert_steps=0,
        select="krr",
        patience=0,
        init="texts",
    )
    return DistillSettings(**(base | change))


def test_allocation_is_proportional_with_one_per_class():
    assert allocate([50, 30, 20], 10, power=1.0) == [5, 3, 2]
    assert allocate([1000, 1, 1], 5, power=1.0) == [3, 1, 1]
    assert allocate([10, 0, 10], 4, power=1.0) == [2, 0, 2]  # a class without training nodes gets none
    assert sum(allocate([7, 3, 9, 1], 13, power=1.0)) == 13
    assert synthetic_size(1625, 7, 0.01, None) == 16
    assert synthetic_size(100, 7, 0.01, None) == 7  # at least one per class
    with pytest.raises(SettingsError, match="below the number of classes"):
        synthetic_size(100, 7, None, 5)


def test_allocation_power_moves_nodes_to_small_classes():
    counts = [400, 100, 100]
    assert allocate(counts, 12, power=1.0) == [8, 2, 2]  # the training class balance
    assert allocate(counts, 12, power=0.5) == [6, 3, 3]  # square roots 20 : 10 : 10
    assert allocate(counts, 12, power=0.0) == [4, 4, 4]
    assert allocate([10, 0, 10], 4, power=0.5) == [2, 0, 2]  # still none for a class without training nodes
    with pytest.raises(SettingsError, match="allocation_power"):
        settings(allocation_power=1.5)


def test_an_unset_allocation_power_spreads_the_budget_only_where_most_classes_would_get_one_node(demo):
    assert allocation_power([400, 100, 100], 12) == 1.0  # proportional: [8, 2, 2], the balance is kept
    assert allocation_power([400, 40, 30, 20, 10], 10) == 0.5  # proportional: [6, 1, 1, 1, 1]
    assert allocate([400, 40, 30, 20, 10], 10, power=0.5) == [5, 2, 1, 1, 1]
    assert allocation_power([400, 40, 30, 20, 10], 10, floor=2) == 1.0  # the floor already gives each two
    assert allocation_power([900, 0, 30, 20, 10], 10) == 0.5  # a class without training nodes does not count
    assert allocation_power([900, 0, 300, 200, 100], 10) == 0.5  # proportional: [6, 0, 2, 1, 1], half the classes at one
    assert allocation_power([600, 0, 300, 200, 100], 12) == 1.0  # proportional: [6, 0, 3, 2, 1], one class of four at one
    assert allocation_power([10] * 5, 5) == 0.5  # one node per class either way
    # The settings leave it unset by default, and a given power is used as it is.
    counts, n = demo.class_counts(demo.train_mask), 10
    assert DistillSettings().allocation_power is None
    assert class_allocation(demo, settings()) == allocate(counts, n, allocation_power(counts, n))
    assert class_allocation(demo, settings(allocation_power=0.0)) == allocate(counts, n, 0.0)


def test_a_class_floor_gives_small_classes_more_when_the_budget_allows():
    counts = [900, 60, 20, 20]
    assert allocate(counts, 10, power=1.0) == [7, 1, 1, 1]
    assert allocate(counts, 10, power=1.0, floor=2) == [4, 2, 2, 2]  # taken from the class above its floor
    assert allocate([900, 60, 1], 10, power=1.0, floor=2) == [7, 2, 1]  # never more than a class's training nodes
    assert allocate([10] * 7, 8, power=1.0, floor=2) == [2, 1, 1, 1, 1, 1, 1]  # 8 cannot give 7 classes 2: one each
    assert allocate([10, 0, 10], 4, power=1.0, floor=2) == [2, 0, 2]
    with pytest.raises(SettingsError, match="min_class_nodes"):
        settings(min_class_nodes=0)


def test_initialisation_seeds_each_class_from_its_training_nodes_and_reads_their_texts_only_when_asked(demo, tiny_lm, demo_features):
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(init="texts"), CPU)
    assert torch.bincount(demo.labels[distiller.seed_nodes], minlength=demo.num_classes).tolist() == class_allocation(demo, settings())
    assert bool(demo.train_mask[distiller.seed_nodes].all())
    assert torch.equal(distiller.synthetic.labels, demo.labels[distiller.seed_nodes])
    first = tiny_lm.tokenizer(demo.texts[int(distiller.seed_nodes[0])], truncation=True, max_length=8)["input_ids"]
    expected = tiny_lm.embeddings(torch.tensor(first))
    assert torch.allclose(distiller.synthetic.representation.embeddings[0, : len(first)], expected)
    private = Distiller.start(demo, tiny_lm, demo_features, settings(init="vocab"), CPU)  # the default start
    assert torch.equal(private.seed_nodes, distiller.seed_nodes) and torch.equal(private.synthetic.labels, distiller.synthetic.labels)
    start = private.synthetic.representation.embeddings[0, : len(first)]
    assert not torch.allclose(start, expected) and private.synthetic.representation.mask.all()


def test_gradient_injection_equals_full_backpropagation(demo, tiny_lm, demo_features):
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(structure="learned", soft_labels=True), CPU)
    rows = distiller.real.train_nodes[:40]
    synthetic = distiller.synthetic
    learned = (synthetic.representation.embeddings, synthetic.adjacency_logits, synthetic.targets)

    full = encode_embeddings(tiny_lm, synthetic.representation.embeddings, synthetic.representation.mask).double()
    distiller.kernel_loss(full, rows).backward()
    expected = [p.grad.clone() for p in learned]
    distiller.optimizer.zero_grad()

    leaf = distiller.features().double().requires_grad_()  # chunked, no autograd through the LM
    distiller.kernel_loss(leaf, rows).backward()
    synthetic.representation.inject(leaf.grad)  # chunks of 3 nodes
    got = [p.grad for p in learned]
    for name, a, b in zip(("embeddings", "adjacency", "labels"), expected, got):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), name
    assert expected[0].abs().sum() > 0


def test_loss_falls_on_demo(demo, tiny_lm, demo_features):
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(steps=25, lr=0.05), CPU)
    losses = [distiller.outer_step().loss for _ in range(25)]
    assert sum(losses[-5:]) / 5 < 0.9 * losses[0], losses


def test_runs_are_reproducible_by_seed(demo, tiny_model_dir, demo_features):
    def run(seed):
        lm = load_language_model(str(tiny_model_dir))
        return distill(Distiller.start(demo, lm, demo_features, settings(seed=seed, krr_batch=50), CPU))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.embeddings, b.embeddings) and a.history == b.history
    assert not torch.equal(a.embeddings, c.embeddings)


@pytest.mark.parametrize("structure", ["identity", "knn", "learned"])
def test_structures_give_valid_bundles(demo, tiny_lm, demo_features, tmp_path, structure):
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, settings(structure=structure), CPU, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    adjacency = loaded.adjacency
    assert torch.equal(adjacency, adjacency.T) and bool((adjacency >= 0).all()) and adjacency.diagonal().abs().sum() == 0
    assert (adjacency.sum() == 0) == (structure == "identity")
    assert loaded.distillation.settings["structure"] == structure
    assert loaded.distillation.num_synthetic == 10 and loaded.distillation.ratio is None
    assert torch.allclose(loaded.features, encode_embeddings(tiny_lm, loaded.token_embeddings, loaded.attention_mask), atol=1e-5)


def test_learned_adjacency_is_symmetric_nonnegative_zero_diagonal():
    logits = torch.randn(5, 5, requires_grad=True)
    adjacency = learned_adjacency(logits)
    assert torch.equal(adjacency, adjacency.T) and bool((adjacency >= 0).all()) and adjacency.diagonal().sum() == 0
    adjacency.sum().backward()
    assert logits.grad.abs().sum() > 0


def test_soft_labels_are_learned(demo, tiny_lm, demo_features, tmp_path):
    plan = settings(soft_labels=True, lr_labels=0.1)
    distiller = Distiller.start(demo, tiny_lm, demo_features, plan, CPU)
    one_hot = torch.nn.functional.one_hot(distiller.synthetic.labels, 5).to(distiller.synthetic.targets.dtype)
    for _ in range(3):
        distiller.outer_step()
    assert not torch.equal(distiller.synthetic.targets.detach(), one_hot)  # the outer loop moved them

    # The bundle holds the selected step's labels: one-hot still when the start was best.
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "b")
    assert bundle.soft_labels is not None and bundle.soft_labels.shape == (10, 5)
    learned = not torch.equal(bundle.soft_labels, torch.nn.functional.one_hot(bundle.labels, 5).float())
    assert learned == (outcome.best_step > 0)


INNER = {"inner_every": 2, "inner_steps": 2, "inner_lr": 1e-2, "inner_refresh": 20, "select": "gcn"}  # krr selection refuses the inner loop


@pytest.mark.parametrize("inner", [{}, INNER, INNER | {"inner_restart": True}], ids=["outer", "inner-loop", "restarted-inner-loop"])
def test_resume_continues_an_interrupted_run(demo, tiny_model_dir, demo_features, tmp_path, inner):
    plan = settings(steps=8, checkpoint_every=3, krr_batch=50, structure="learned", soft_labels=True, **inner)

    class Stop(Exception):
        pass

    def stop_at_step_7(report):
        if report.step == 7:
            raise Stop

    with pytest.raises(Stop):
        run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "b", on_step=stop_at_step_7)
    assert not (tmp_path / "b").exists()
    state = yaml.safe_load((tmp_path / "b.checkpoint" / "state.yaml").read_text())
    assert state["state"]["step"] == 6

    resumed, outcome = run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "b", resume=True)
    assert outcome.resumed_from_step == 6 and not (tmp_path / "b.checkpoint").exists()
    straight, _ = run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "c")
    assert torch.allclose(resumed.token_embeddings, straight.token_embeddings, atol=1e-6)
    assert torch.allclose(resumed.soft_labels, straight.soft_labels, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_run(demo, tiny_model_dir, demo_features, tmp_path):
    plan = settings(steps=4, checkpoint_every=2)

    def stop(report):
        if report.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "b", on_step=stop)
    other = settings(steps=4, checkpoint_every=2, lr=0.5)
    with pytest.raises(SettingsError, match="settings.lr differ"):
        run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, other, CPU, tmp_path / "b", resume=True)
    with pytest.raises(SettingsError, match="no checkpoint"):
        run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "x", resume=True)


def test_inner_loop_trains_the_lm_but_bundle_uses_the_pretrained_one(demo, tiny_model_dir, demo_features, tmp_path):
    lm = load_language_model(str(tiny_model_dir))
    plan = settings(steps=4, inner_every=2, inner_steps=2, inner_lr=1e-2, select="gcn")
    bundle, _ = run_distillation(demo, lm, demo_features, plan, CPU, tmp_path / "b")
    from talk_cli.encode.lm import weights_sha256

    assert weights_sha256(lm.model) == lm.identity.weights_sha256  # pretrained weights restored
    assert torch.allclose(bundle.features, encode_embeddings(lm, bundle.token_embeddings, bundle.attention_mask), atol=1e-5)


def test_batch_wise_refresh_re_encodes_exactly_the_nodes_it_names(demo, tiny_lm, tiny_model_dir, demo_features):
    plan = settings(inner_every=1, inner_steps=3, inner_lr=1e-2, inner_refresh=12, select="gcn")
    distiller = Distiller.start(demo, tiny_lm, demo_features, plan, CPU)
    nodes = distiller.inner_round()
    assert len(nodes.unique()) == 12 and bool(demo.train_mask[nodes].all())
    full, _ = encode_texts(demo.texts, distiller.inner.tuned, EncodeSettings(max_length=plan.max_length), CPU)  # the inner loop's LM
    assert not torch.allclose(full[nodes], demo_features[nodes], atol=1e-3)  # the LM did move
    assert weights_sha256(tiny_lm.model) == tiny_lm.identity.weights_sha256  # on its own copy: the caller's LM is as loaded
    expected = demo_features.clone()
    expected[nodes] = full[nodes]
    assert torch.allclose(distiller.inner.feature_table, expected, atol=1e-5)  # the others keep their features
    rebuilt = RealGraphSide(distiller.real.adjacency, expected, plan.kernel_spec())
    assert torch.allclose(distiller.real.kernel_side.propagated, rebuilt.propagated, atol=1e-5)
    assert distiller.inner.refresh(distiller.real.train_nodes, distiller.generator).shape == (12,)
    every = Distiller.start(demo, load_language_model(str(tiny_model_dir)), demo_features, dataclasses.replace(plan, inner_refresh=0), CPU)
    assert len(every.inner_round()) == demo.num_nodes


# --- the command ---------------------------------------------------------------------------------


def test_cli_distill_writes_a_verified_bundle(tiny_model_dir, tmp_path):
    out = tmp_path / "demo-b"
    result = run_cli(
        "distill", "--dataset", "demo", "--model", tiny_model_dir, "--ratio", "0.05", "--steps", "4",
        "--seq-len", "8", "--out", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["num_synthetic"] == 9 and summary["recipe"].endswith("demo.yaml")  # round(0.05 x 180)
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    assert manifest["distillation"]["ratio"] == 0.05 and manifest["distillation"]["ratio_of"] == "train_nodes"
    assert run_cli("inspect", out, "--verify").exit_code == 0
    again = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--steps", "2", "--out", out)
    assert again.exit_code == 2 and "already exists" in again.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ratio", "0"], "--ratio must be in (0, 1]"),
        (["--ratio", "1.5"], "--ratio must be in (0, 1]"),
        (["--size", "3"], "--size 3 is below the number of classes with training nodes (5)"),
        ({"structure": "star"}, "structure must be one of identity, knn, learned, got 'star'"),
        ({"kernel": "interleaved", "hops": 3}, "supports hops 1 or 2"),
        (["--structure", "knn"], "No such option: --structure"),  # a recipe key only
        (["--recipe", "nosuchrecipe"], "unknown recipe 'nosuchrecipe'"),
    ],
)
def test_cli_bad_settings(tiny_model_dir, tmp_path, args, message):
    args = ["--recipe", recipe(tmp_path, **args)] if isinstance(args, dict) else args
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--steps", "2", "--out", tmp_path / "b", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_cli_unknown_dataset_and_recipe_key(tiny_model_dir, tmp_path):
    result = run_cli("distill", "--dataset", "nope", "--data-root", tmp_path, "--out", tmp_path / "b")
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 3\nlearning_rate: 0.1\n")
    result = run_cli("distill", "--dataset", "demo", "--recipe", recipe, "--out", tmp_path / "b")
    assert result.exit_code == 2 and "unknown key(s) ['learning_rate']" in result.stderr
    recipe.write_text("steps: ten\n")
    result = run_cli("distill", "--dataset", "demo", "--recipe", recipe, "--out", tmp_path / "b")
    assert result.exit_code == 2 and "'steps' must be int" in result.stderr


@pytest.mark.parametrize("method", ["random", "herding", "kcenter"])
def test_coreset_bundles_hold_real_nodes_with_their_subgraph(demo, tiny_lm, tmp_path, method):
    plan = DistillSettings(method=method, ratio=0.1, max_length=16)
    real = encode_tag(demo, tiny_lm, EncodeSettings(max_length=16)).features  # features at the bundle's length
    bundle, outcome = run_distillation(demo, tiny_lm, real, plan, CPU, tmp_path / "b")
    nodes = outcome.seed_nodes
    assert len(nodes) == 18 and len(set(nodes.tolist())) == 18 and bool(demo.train_mask[nodes].all())
    assert torch.equal(bundle.labels, demo.labels[nodes])
    assert bundle.labels.bincount(minlength=5).tolist() == class_allocation(demo, plan)
    dense = torch.zeros(demo.num_nodes, demo.num_nodes)
    dense[demo.edge_index[0], demo.edge_index[1]] = 1
    assert torch.equal(bundle.adjacency, dense[nodes][:, nodes])
    # the stored features are the real nodes' features, and what the LM makes of the stored tokens
    assert torch.equal(bundle.features, real[nodes])
    with torch.no_grad():
        pooled = encode_embeddings(tiny_lm, bundle.token_embeddings, bundle.attention_mask)
    assert torch.allclose(bundle.features, pooled, atol=1e-5)
    assert load_bundle(tmp_path / "b").distillation.method == method


def test_coresets_ignore_loop_settings_and_the_cli_says_which(demo, tiny_lm, demo_features, tmp_path):
    plain = DistillSettings(method="herding", ratio=0.1, max_length=16)
    loop = {"steps": 3, "lr": 0.5, "seq_len": 4, "structure": "knn", "soft_labels": True, "inner_every": 1, "krr_batch": 7, "lm_chunk": 2}
    _, picked = run_distillation(demo, tiny_lm, demo_features, plain, CPU, tmp_path / "plain")
    _, again = run_distillation(demo, tiny_lm, demo_features, dataclasses.replace(plain, **loop), CPU, tmp_path / "loop")
    assert torch.equal(picked.seed_nodes, again.seed_nodes) and torch.equal(picked.embeddings, again.embeddings)
    assert torch.equal(picked.adjacency, again.adjacency)

    result = run_cli("distill", "--dataset", "demo", "--method", "herding", "--steps", "5", "--lr", "0.5", "--seed", "3", "--print-settings")
    assert result.exit_code == 0, result.output
    assert "herding picks real training nodes in one go and runs no loop, so it ignores --lr, --steps" in result.stderr
    assert "--seed" not in result.stderr  # a coreset reads its seed
    result = run_cli("distill", "--dataset", "demo", "--steps", "5", "--print-settings")
    assert result.exit_code == 0 and "ignores" not in result.stderr


def test_best_at_step_0_is_reported_as_the_warm_start_when_there_is_one(tiny_model_dir, tmp_path):
    """Steps too small to change anything keep step 0. Without the feature-to-token warm start that
    is the seed nodes, and the CLI warns; with it, step 0 is the fitted set (the shipped arxiv_2023
    recipe's usual choice), so the CLI names it and gives no advice against it."""
    common = ["distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "6", "--steps", "2", "--eval-every", "1", "--lr", "1e-12"]
    seeds = run_cli(*common, "--invert-steps", "0", "--out", tmp_path / "seeds")
    assert seeds.exit_code == 0, seeds.output
    assert "warm start" not in seeds.stderr and "no step improved" in seeds.stderr
    warm = run_cli(*common, "--invert-steps", "3", "--out", tmp_path / "warm")
    assert warm.exit_code == 0, warm.output
    assert "at step 0 (the feature-to-token warm start)" in warm.stderr and "no step improved" not in warm.stderr
    # kernel-features has no warm start whatever --invert-steps says (its default is 100): step 0 is its seeds.
    free = run_cli(*common, "--method", "kernel-features", "--out", tmp_path / "free")
    assert free.exit_code == 0, free.output
    assert "warm start" not in free.stderr and "no step improved" in free.stderr
    assert [DistillSettings(method=m).warm_starts for m in ("talk", "kernel-features", "herding")] == [True, False, False]
    assert not DistillSettings(invert_steps=0).warm_starts


def test_herding_and_kcenter_pick_what_they_promise():
    from talk_cli.distill.coreset import herding, kcenter

    points = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [5.0, 5.0], [4.0, 4.0]])
    assert herding(points, 1) == [4]  # the point nearest the mean (3.8, 3.8)
    assert kcenter(points, 3) == [4, 1, 2]  # start near the mean, then the farthest points


def test_kernel_features_learns_feature_vectors_without_the_lm(demo, tiny_lm, demo_features, tmp_path):
    plan = settings(method="kernel-features", steps=10, lr=0.05)
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "b")
    seeds = outcome.seed_nodes
    assert bundle.distillation.method == "kernel-features"
    assert not torch.allclose(bundle.features, demo_features[seeds])  # learned, moved from the seeds
    first, _ = run_distillation(demo, tiny_lm, demo_features, settings(method="kernel-features", steps=1, lr=0.05), CPU, tmp_path / "c")
    # the token embeddings are the untouched seed texts
    assert torch.equal(bundle.token_embeddings, first.token_embeddings)
    with pytest.raises(SettingsError, match="no LM in its loop"):
        settings(method="kernel-features", inner_every=2)


def test_a_stop_request_checkpoints_the_step_and_resume_continues_exactly(demo, tiny_model_dir, demo_features, tmp_path):
    """Ctrl-C before the first periodic checkpoint (step 25) used to leave nothing to resume."""
    from talk_cli.distill import Interrupted, StopRequested

    plan = settings(steps=6, checkpoint_every=25, krr_batch=50)

    def stop_after_step_2(report):
        if report.step == 2:
            raise StopRequested

    with pytest.raises(Interrupted, match="stopped after step 2 of 6; checkpoint at .* --resume"):
        run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "b", on_step=stop_after_step_2)
    resumed, outcome = run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "b", resume=True)
    straight, _ = run_distillation(demo, load_language_model(str(tiny_model_dir)), demo_features, plan, CPU, tmp_path / "c")
    assert outcome.resumed_from_step == 2
    assert torch.equal(resumed.token_embeddings, straight.token_embeddings)


def test_cli_ctrl_c_stops_at_a_step_boundary_and_says_how_to_resume(tiny_model_dir, tmp_path, monkeypatch):
    import signal

    from talk_cli.distill.loop import Distiller

    outer_step = Distiller.outer_step

    def interrupted_at_step_3(self):
        report = outer_step(self)
        if report.step == 3:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C would, in the middle of the run
        return report

    monkeypatch.setattr(Distiller, "outer_step", interrupted_at_step_3)
    # No warm start: its free-feature stage runs outer steps of its own, and the interruption is meant for the token loop's.
    common = ["distill", "--dataset", "demo", "--model", tiny_model_dir, "--steps", "6", "--seq-len", "8", "--invert-steps", "0", "--out", tmp_path / "b"]
    stopped = run_cli(*common)
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted: stopped after step 3 of 6" in stopped.stderr and "--resume" in stopped.stderr
    monkeypatch.setattr(Distiller, "outer_step", outer_step)
    resumed = run_cli(*common, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from step 3" in resumed.stderr


def test_the_distillation_curve_averages_the_loss_between_validations():
    from talk_cli.distill.run import distillation_curve

    history = [
        {"step": 1, "loss": 4.0, "val_accuracy": 0.5},  # validated the state before step 1's update: step 0
        {"step": 2, "loss": 2.0, "val_accuracy": None},
        {"step": 3, "loss": 1.0, "val_accuracy": 0.75},
    ]
    assert distillation_curve(history) == [
        {"step": 0, "val_accuracy": 0.5, "loss": 4.0},
        {"step": 2, "val_accuracy": 0.75, "loss": 1.5},
    ]


def test_a_run_whose_best_step_is_zero_says_so(tmp_path, tiny_model_dir):
    from conftest import run_cli

    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "10", "--steps", "4", "--eval-every", "2",
                     "--lr", "1e-30", "--invert-steps", "0", "--out", tmp_path / "b")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best at step 0" in result.stderr and "try a smaller --lr" in result.stderr


def test_inversion_fits_token_embeddings_to_target_features(demo, tiny_lm, demo_features):
    tokens = Distiller.start(demo, tiny_lm, demo_features, settings(), CPU).synthetic.representation
    start = tokens.features()
    target = start + torch.randn(start.shape, generator=torch.Generator().manual_seed(0)) * start.std()
    tokens.fit(target, steps=40, lr=0.05)
    assert (tokens.features() - target).norm() < 0.5 * (start - target).norm()


def test_warm_start_starts_the_token_loop_from_the_free_features_solution(demo, tiny_lm, demo_features, tmp_path):
    plan = settings(invert_steps=30, lr=0.05, structure="learned", soft_labels=True)
    free, _ = run_distillation(
        demo, tiny_lm, demo_features, settings(method="kernel-features", lr=0.05, structure="learned", soft_labels=True), CPU, tmp_path / "free"
    )
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "b")
    report = bundle.distillation.settings["run"]["warm_start"]
    assert report["free_val_accuracy"] == round(free.distillation.settings["run"]["val_accuracy"], 6)
    assert report["inversion_cosine"] > 0.5  # the LM came close to the free vectors through the tokens
    assert outcome.best_val_accuracy >= report["inverted_val_accuracy"]  # the token loop starts there
    cold, _ = run_distillation(demo, tiny_lm, demo_features, settings(lr=0.05, structure="learned", soft_labels=True), CPU, tmp_path / "c")
    assert "warm_start" not in cold.distillation.settings["run"]
    assert not torch.equal(bundle.token_embeddings, cold.token_embeddings)


def test_the_warm_start_reports_its_stages_before_the_token_loop(demo, tiny_lm, demo_features, tmp_path):
    """Progress covers the whole run: the free-feature loop's steps, then the inversion's (its
    squared error falling), then the token loop's, each counted from 1."""
    reports = []
    plan = settings(invert_steps=5, lr=0.02)
    run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "b", on_step=reports.append)
    phases = [r.phase for r in reports]
    assert phases == ["free features"] * plan.steps + ["inversion"] * 5 + ["tokens"] * plan.steps
    for phase, steps in (("free features", plan.steps), ("inversion", 5), ("tokens", plan.steps)):
        assert [r.step for r in reports if r.phase == phase] == list(range(1, steps + 1))
    inversion = [r.loss for r in reports if r.phase == "inversion"]
    assert inversion[-1] < inversion[0]


def test_gcn_selection_scores_the_set_as_evaluate_trains_it_and_never_reads_test_labels(demo, tiny_lm, demo_features, tmp_path):
    import dataclasses

    from talk_cli.evaluate import EvalSettings, evaluate_bundle

    plan = settings(select="gcn", structure="learned", soft_labels=True, lr=0.05)
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "b")
    again = evaluate_bundle(bundle, demo, demo_features, EvalSettings(runs=1, eval_every=10, seed=plan.seed), CPU).as_dict()
    assert again["val_accuracy_mean"] == outcome.best_val_accuracy  # the stored set is the one that was judged

    test = torch.nonzero(demo.test_mask).flatten()
    swapped = demo.labels.clone()
    swapped[test] = (swapped[test] + 1) % demo.num_classes  # every test label wrong
    other = dataclasses.replace(demo, labels=swapped)
    _, blind = run_distillation(other, tiny_lm, demo_features, plan, CPU, tmp_path / "c")
    assert blind.best_step == outcome.best_step
    assert [h["val_accuracy"] for h in blind.history] == [h["val_accuracy"] for h in outcome.history]


def test_patience_stops_the_token_loop_where_the_full_run_would_have_stalled(demo, tiny_lm, demo_features, tmp_path):
    plan = settings(steps=24, eval_every=2, lr=0.05)
    full, every = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "every")
    curve = [point["val_accuracy"] for point in full.distillation.curve]
    patience = 2
    stop, best, since = None, -1.0, 0  # where the full run's validations first went `patience` checks without a new best
    for index, val in enumerate(curve):
        best, since = (val, 0) if val > best else (best, since + 1)
        if since >= patience:
            stop = index
            break
    assert stop is not None, "the tiny run never stalled: pick a setting that does"
    bundle, outcome = run_distillation(demo, tiny_lm, demo_features, dataclasses.replace(plan, patience=patience), CPU, tmp_path / "p")
    stopped_curve = [point["val_accuracy"] for point in bundle.distillation.curve]
    assert stopped_curve == curve[: stop + 1]  # the same trajectory, cut at the stall
    assert outcome.stopped_at == stop * plan.eval_every and bundle.distillation.settings["run"]["stopped_at"] == outcome.stopped_at
    assert outcome.best_val_accuracy == max(curve[: stop + 1]) and every.stopped_at is None
    assert outcome.phase_seconds["tokens: krr selection"] > 0 and "tokens: gradient injection" in outcome.phase_seconds


def test_inversion_stops_once_it_reaches_the_cosine_asked_for(demo, tiny_lm, demo_features):
    tokens = Distiller.start(demo, tiny_lm, demo_features, settings(), CPU).synthetic.representation
    start = tokens.features()
    target = start + torch.randn(start.shape, generator=torch.Generator().manual_seed(0)) * start.std()
    start_cosine = float(torch.nn.functional.cosine_similarity(start, target).mean())
    goal = start_cosine + (1 - start_cosine) / 2
    steps, reached = tokens.fit(target, steps=200, lr=0.05, cosine=goal)
    assert 1 < steps < 200 and reached >= goal
    assert float(torch.nn.functional.cosine_similarity(tokens.features(), target).mean()) == pytest.approx(reached, abs=1e-5)


def test_a_bundle_over_the_size_limit_is_refused_before_any_work(demo, tiny_lm, demo_features, tmp_path, monkeypatch):
    """Before 2026-12-04 the writer refused an oversized bundle only after the whole run."""
    from talk_cli.bundle import spec
    from talk_cli.errors import SettingsError

    monkeypatch.setattr(spec, "MAX_TENSOR_BYTES", 10_000)  # as a 40k-node coreset meets the real 4 GiB limit
    picked = []
    monkeypatch.setattr("talk_cli.distill.run.pick_coreset", lambda *args: picked.append(args))
    with pytest.raises(SettingsError, match="over the format's"):
        run_distillation(demo, tiny_lm, demo_features, settings(method="random", size=None, ratio=0.5), CPU, tmp_path / "b")
    assert not picked and not (tmp_path / "b").exists()


def test_with_the_inner_loop_gcn_selection_judges_the_set_as_it_is_stored(demo, tiny_lm, demo_features, monkeypatch):
    """Before 2026-12-04 GCN selection scored the inner loop's fine-tuned features, a set never stored."""
    from talk_cli.distill import real

    judged = []
    # Each judgement scores higher than the last, so the final state is the one stored.
    monkeypatch.setattr(real, "validation_run", lambda training, real, settings, seed: judged.append(training.graph.x.clone()) or len(judged))
    plan = settings(inner_every=1, inner_steps=3, inner_lr=1e-2, select="gcn", steps=3, eval_every=1)
    distiller = Distiller.start(demo, tiny_lm, demo_features, plan, CPU)
    distill(distiller)
    stored = encode_embeddings(tiny_lm, distiller.synthetic.representation.token_embeddings, distiller.synthetic.representation.mask)
    assert torch.allclose(judged[-1], stored.float(), atol=1e-5)  # the pretrained LM's reading of the tokens
    tuned = distiller.synthetic.representation  # finish() put the pretrained LM back; read through the tuned one:
    tuned.lm = distiller.inner.tuned
    assert not torch.allclose(tuned.features(), stored, atol=1e-3)  # which the inner loop did move


def test_the_inner_loop_trains_on_the_class_distribution_evaluation_uses(demo, tiny_lm, demo_features, monkeypatch):
    """Soft labels mean one thing to every classifier: clamped and normalised (before 2026-12-04 the
    inner loop took their softmax)."""
    from talk_cli.distill import inner
    from talk_cli.gnn.train import training_targets

    seen = []
    monkeypatch.setattr(inner, "tokens_step", lambda lm, gcn, training, *rest: seen.append(training.targets.clone()))
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(inner_every=1, soft_labels=True, lr_labels=0.5, select="gcn"), CPU)
    distiller.outer_step()
    synthetic = distiller.synthetic
    assert torch.equal(seen[0], training_targets(synthetic.labels, synthetic.targets.detach()))


def test_the_inner_loop_trains_the_gcn_that_judges_the_bundle(demo, tiny_lm, demo_features):
    """One GCN: the inner loop's classifier is `talk evaluate`'s (architecture, hidden units,
    dropout), freshly built on a restart, and a round moves it."""
    from talk_cli.evaluate import EvalSettings, build_model

    judge = EvalSettings()
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(inner_every=1, inner_restart=True, select="gcn"), CPU)
    expected = build_model(judge.architecture, tiny_lm.identity.hidden_size, demo.num_classes, judge.hidden, judge.dropout)
    assert type(distiller.inner.gcn) is type(expected)
    assert {k: v.shape for k, v in distiller.inner.gcn.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}
    distiller.outer_step()  # a round: restarted at step 1, then trained
    restarted = distiller.inner.gcn.state_dict()
    torch.manual_seed(distiller.settings.seed + 1)
    fresh = build_model(judge.architecture, tiny_lm.identity.hidden_size, demo.num_classes, judge.hidden, judge.dropout).state_dict()
    assert any(not torch.equal(restarted[k], fresh[k]) for k in fresh)


def test_patience_leaves_the_free_feature_loop_to_run_its_steps(demo, tiny_lm, demo_features, tmp_path):
    plan = settings(method="kernel-features", steps=24, eval_every=2, lr=0.05, patience=1)
    _, outcome = run_distillation(demo, tiny_lm, demo_features, plan, CPU, tmp_path / "kf")
    assert outcome.stopped_at is None and len(outcome.history) == 24


def test_the_inverted_set_is_validated_once_for_the_warm_start_and_step_0(demo, tiny_lm, demo_features, monkeypatch):
    calls = []
    original = Distiller.remember_if_best

    def counted(self, features, phase=None):
        calls.append("inversion" if self.stage == "tokens" and self.warm_start_report is None else self.stage)
        return original(self, features, phase)

    monkeypatch.setattr(Distiller, "remember_if_best", counted)
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(invert_steps=3, steps=4, eval_every=2, invert_cosine=0), CPU)
    outcome = distill(distiller)
    assert calls.count("inversion") == 2  # after 2 updates, and the state the third left
    # the token loop, when it runs (a gap to close), validates step 2 and its final state: step 0 not again
    assert calls.count("tokens") == (2 if distiller.behind_start else 0)
    assert round(outcome.history[0]["val_accuracy"], 6) == outcome.warm_start["inverted_val_accuracy"]


def test_a_distillation_leaves_the_callers_lm_as_it_was(demo, tiny_model_dir, demo_features, tmp_path):
    """The distiller reads through its own frozen float32 copy: the caller's LM keeps its mode,
    its trainable flags, its dtype and its weights."""
    from talk_cli.encode.lm import weights_sha256

    lm = load_language_model(str(tiny_model_dir))
    lm.model.train().requires_grad_(True)
    run_distillation(demo, lm, demo_features, settings(invert_steps=3), CPU, tmp_path / "b")
    assert lm.model.training and all(p.requires_grad for p in lm.model.parameters())
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
    assert weights_sha256(lm.model) == lm.identity.weights_sha256


@pytest.mark.parametrize("kernel", ["propagate-first", "interleaved"])
def test_krr_validation_in_blocks_solves_the_synthetic_side_once(demo, tiny_lm, demo_features, monkeypatch, kernel):
    from talk_cli.distill import real as real_module

    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(kernel=kernel), CPU)
    features = distiller.features().double()

    def accuracy() -> float:
        return real_module.krr_accuracy(distiller.real, distiller.synthetic, features, distiller.settings.ridge)

    whole = accuracy()
    calls = {"synthetic_kernel": 0, "cross_kernel": 0}
    for name in calls:
        original = getattr(real_module, name)
        monkeypatch.setattr(real_module, name, lambda *a, _f=original, _n=name, **k: calls.__setitem__(_n, calls[_n] + 1) or _f(*a, **k))
    monkeypatch.setattr(real_module, "VALIDATION_BLOCK", 7)
    assert accuracy() == whole
    validation = int(demo.val_mask.sum())
    assert calls["synthetic_kernel"] == 1
    # Propagate-first computes the rows it is asked for, block by block; the interleaved kernel
    # computes every row whichever are asked, so it is asked once.
    assert calls["cross_kernel"] == (-(-validation // 7) if kernel == "propagate-first" else 1)
    assert validation > 7


def scripted_validation(monkeypatch, free: float, inversion: list[float], tokens: float):
    """Replace validation by a script: the free loop scores `free`, the inversion's checks score
    `inversion` in turn, the token loop `tokens`. Returns the stages that were judged."""
    judged, scores = [], iter(inversion)

    def fake(self, features):
        stage = "free" if self.stage != "tokens" else "inversion" if self.warm_start_report is None else "tokens"
        judged.append(stage)
        return free if stage == "free" else next(scores) if stage == "inversion" else tokens

    built = Distiller.__init__

    def scripted(self, *args, **kwargs):  # each loop's score, built once, becomes the script
        built(self, *args, **kwargs)
        self.score = lambda features: fake(self, features)

    monkeypatch.setattr(Distiller, "__init__", scripted)
    return judged


def test_the_inversion_stops_once_it_validates_as_well_as_the_free_set_and_the_token_loop_is_skipped(demo, tiny_lm, demo_features, monkeypatch):
    judged = scripted_validation(monkeypatch, free=0.6, inversion=[0.3, 0.5, 0.6], tokens=0.9)
    plan = settings(invert_steps=50, invert_cosine=0, steps=10, eval_every=2, patience=1)
    outcome = distill(Distiller.start(demo, tiny_lm, demo_features, plan, CPU))
    report = outcome.warm_start
    assert judged.count("inversion") == 3 and "tokens" not in judged  # the token loop had no gap to close
    assert (report["inversion_steps"], report["inversion_best_step"], report["inverted_val_accuracy"]) == (7, 6, 0.6)
    assert outcome.stopped_at == 0 and outcome.best_step == 0 and outcome.best_val_accuracy == 0.6
    assert [point["val_accuracy"] for point in outcome.history] == [0.6]


def test_an_inversion_that_stays_below_the_free_set_keeps_its_best_and_the_token_loop_gets_more_patience(demo, tiny_lm, demo_features, monkeypatch):
    from talk_cli.distill.loop import CATCH_UP_PATIENCE

    judged = scripted_validation(monkeypatch, free=0.9, inversion=[0.5, 0.7, 0.6], tokens=0.7)
    plan = settings(invert_steps=6, invert_cosine=0, steps=40, eval_every=2, patience=1)
    distiller = Distiller.start(demo, tiny_lm, demo_features, plan, CPU)
    outcome = distill(distiller)
    report = outcome.warm_start
    # checks after 2 and 4 updates, then the state the sixth and last update left; the one after 4 is kept
    assert judged.count("inversion") == 3 and (report["inversion_best_step"], report["inverted_val_accuracy"]) == (4, 0.7)
    assert distiller.behind_start and outcome.warm_start["free_val_accuracy"] == 0.9
    # the token loop never beats 0.7: it stops after CATCH_UP_PATIENCE checks, not patience's one
    assert judged.count("tokens") == CATCH_UP_PATIENCE and outcome.stopped_at == CATCH_UP_PATIENCE * plan.eval_every
    assert outcome.best_step == 0 and outcome.best_val_accuracy == 0.7


def test_nested_phases_charge_each_second_to_the_innermost_once(monkeypatch):
    """The inversion's validations run inside its phase: the phases still add up to the run."""
    from talk_cli import clock

    now = [0.0]
    monkeypatch.setattr(clock.time, "perf_counter", lambda: now[0])
    timer = clock.PhaseClock()
    with timer("inversion"):
        now[0] += 1
        with timer("inversion: gcn selection"):
            now[0] += 2
        now[0] += 3
    with timer("inversion"):
        now[0] += 4
    assert timer.report() == {"inversion": 8.0, "inversion: gcn selection": 2.0}


def test_a_shipped_set_below_the_free_set_is_said_in_the_card_and_on_the_command_line(tmp_path, tiny_model_dir, monkeypatch):
    scripted_validation(monkeypatch, free=0.9, inversion=[0.5, 0.6], tokens=0.6)
    out = tmp_path / "b"
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "10", "--steps", "6", "--eval-every", "2",
                     "--invert-steps", "4", "--invert-cosine", "0", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    said = "validates 0.6000, 30.0 points below the free set it started from"
    assert said in result.stderr and "warning: Warm start: the free feature set validated 0.9000" in result.stderr
    card = (out / "README.md").read_text()
    assert said in card and "the inversion's token set after 4 of its 4 steps" in card


def test_a_run_whose_inversion_reaches_the_free_set_says_the_token_loop_was_not_needed(tmp_path, tiny_model_dir, monkeypatch):
    scripted_validation(monkeypatch, free=0.6, inversion=[0.6], tokens=0.9)
    result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "10", "--eval-every", "2", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "no token loop: the inverted set validates as well as the free set it fits" in result.stderr and "warning" not in result.stderr


def test_krr_selection_with_the_inner_loop_is_refused_in_one_line():
    """KRR selection would score the kernel's view through the inner loop's tuned LM, while the
    bundle stores what the pretrained LM makes of the tokens: a score of a set nobody gets."""
    with pytest.raises(SettingsError, match="--select krr .* --inner-every"):
        settings(inner_every=2, select="krr")
    assert settings(inner_every=2, select="gcn").inner_every == 2 and settings(select="krr").inner_every == 0
    refused = run_cli("distill", "--dataset", "demo", "--select", "krr", "--inner-every", "2", "--print-settings")
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1 and "--select gcn" in refused.stderr


def test_the_warm_start_is_a_second_loop_over_one_shared_side(demo, tiny_lm, demo_features, monkeypatch):
    """The free-feature loop and the token loop share one frozen LM copy, one real side and one set
    of seeds; learning E in place leaves the shared start as it was."""
    from talk_cli.distill import loop

    copies = []
    original = loop.frozen_copy
    monkeypatch.setattr(loop, "frozen_copy", lambda *args: copies.append(args) or original(*args))
    distiller = Distiller.start(demo, tiny_lm, demo_features, settings(invert_steps=3, invert_cosine=0, steps=2, eval_every=1), CPU)
    start = distiller.shared.embeddings.clone()
    distill(distiller)
    assert len(copies) == 1
    assert torch.equal(distiller.shared.embeddings, start)
    assert not torch.equal(distiller.synthetic.representation.embeddings, start)  # the inversion moved E
