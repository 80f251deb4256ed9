"""The Python API from a user's side: docs/python-api.md's example runs as written, and
`pipeline.real_graph(bundle)` gives the real graph with the bundle's split."""

from __future__ import annotations

import contextlib
import io
import re
import types

import pytest
import torch
from conftest import REPO, run_cli

from talk_cli import load_bundle, pipeline
from talk_cli.data.split import SplitSpec
from talk_cli.errors import SettingsError
from talk_cli.pipeline import load_dataset


@pytest.fixture
def demo_bundle(tmp_path, tiny_model_dir):
    def make(name: str = "cora-1pct", *extra: str):
        result = run_cli("distill", "--dataset", "demo", "--model", tiny_model_dir, "--size", "10", "--steps", "3", "--out", tmp_path / name, "--quiet", *extra)
        assert result.exit_code == 0, result.output
        return tmp_path / name

    return make


def test_the_documented_train_your_own_model_example_runs(demo_bundle, tiny_model_dir, tmp_path, monkeypatch):
    example = re.search(r"## Train your own model.*?```python\n(.*?)```", (REPO / "docs" / "python-api.md").read_text(), re.DOTALL).group(1)
    demo_bundle("cora-1pct")  # the example's bundle name; the demo dataset needs no data root
    # The bundle names its LM by the folder's name: the folder sits where the example runs.
    (tmp_path / tiny_model_dir.name).symlink_to(tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, "docs/python-api.md", "exec"), {})
    accuracy = float(re.fullmatch(r"test accuracy (\S+)\n", printed.getvalue()).group(1))
    assert 0.0 <= accuracy <= 1.0


def test_real_graph_has_the_cached_features_labels_and_the_bundles_split(demo_bundle, tiny_model_dir):
    bundle = load_bundle(demo_bundle("b", "--split-seed", "3", "--split-fractions", "0.5,0.25,0.25"))
    real = pipeline.real_graph(bundle, model=str(tiny_model_dir))
    tag = load_dataset("demo", split=SplitSpec((0.5, 0.25, 0.25), 3))
    assert torch.equal(real.train_mask, tag.train_mask) and torch.equal(real.test_mask, tag.test_mask)
    assert torch.equal(real.y, tag.labels) and torch.equal(real.edge_index, tag.edge_index)
    assert int(real.train_mask.sum()) == bundle.dataset.num_train
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    cached = encode_tag(tag, load_language_model(str(tiny_model_dir)), EncodeSettings(max_length=bundle.lm.max_length))
    assert cached.reused and torch.equal(real.x, cached.features)


def test_real_graph_refuses_data_that_is_not_the_bundles(demo_bundle, tiny_model_dir, tmp_path):
    from conftest import write_tag_folder

    bundle = load_bundle(demo_bundle("b"))
    with pytest.raises(SettingsError, match="dataset hash differs"):
        pipeline.real_graph(bundle, dataset=write_tag_folder(tmp_path / "other"), model=str(tiny_model_dir))


@pytest.mark.parametrize("spec", [SplitSpec(), SplitSpec((0.5, 0.3, 0.2), 7), SplitSpec((0.1, 0.1, 0.8), 0)])
def test_a_split_description_gives_back_its_split(spec):
    assert SplitSpec.from_description(spec.describe()).describe() == spec.describe()
    assert SplitSpec.from_description("split.json").use_dataset_split


def test_distilling_refuses_settings_at_another_length_than_the_prepared_features(tiny_model_dir, tmp_path):
    """The prepared features are what the bundle is selected and evaluated with (and a coreset
    stores): settings that read texts at another length would silently mismatch them."""
    from talk_cli import pipeline
    from talk_cli.encode import EncodeSettings

    prepared = pipeline.prepare(load_dataset("demo"), str(tiny_model_dir), EncodeSettings(max_length=32))
    settings, _ = pipeline.distill_settings("demo", method="herding", max_length=16)
    with pytest.raises(SettingsError, match="prepared at 32"):
        pipeline.distill(prepared, settings, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_pipeline_evaluate_trains_each_protocol_on_its_own_schedule(monkeypatch):
    """Called without settings, `pipeline.evaluate` trains as `talk evaluate` does for the protocol:
    the joint protocol's 100 steps at 5e-6 on a bundle, not the gnn protocol's 200 epochs."""
    from talk_cli import pipeline
    from talk_cli.evaluate import EvalSettings

    seen = []
    monkeypatch.setattr(pipeline, "run_evaluation", lambda tag, lm, features, bundle, settings, *rest: seen.append(settings))
    monkeypatch.setattr(pipeline, "check_match", lambda *args: [])
    prepared = types.SimpleNamespace(tag=None, lm=None, features=None, settings=types.SimpleNamespace(max_length=8), device=None, provenance=None)
    for protocol, bundle in (("joint", object()), ("joint", None), ("gnn", object())):
        pipeline.evaluate(prepared, bundle, protocol=protocol)
    joint_bundle, joint_full, gnn = seen
    assert (joint_bundle.epochs, joint_bundle.lm_lr, joint_bundle.eval_every) == (100, 5e-6, 20)
    assert (joint_full.epochs, joint_full.lm_lr) == (3, 2e-5)
    assert gnn == EvalSettings()
