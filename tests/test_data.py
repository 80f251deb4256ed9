"""The TAG data layer: loading, edge handling, splits, hashing and the demo graph."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHARED_DATASETS, write_tag_folder

from talk_cli.data import SplitSpec, load_tag, load_tag_folder, make_demo_tag
from talk_cli.data.tag import undirected_edge_index
from talk_cli.errors import DataError, SettingsError


def test_folder_loads_in_id_order_with_symmetric_edges(tmp_path):
    nodes = [{"id": i, "label": (i + 1) % 2, "text": f"text {i}"} for i in (3, 1, 0, 2)]  # ids out of file order
    folder = write_tag_folder(tmp_path / "g", nodes=nodes, edges=[(0, 1), (1, 0), (2, 2), (2, 3), (2, 3)])
    tag = load_tag_folder(folder, SplitSpec(fractions=(0.5, 0.25, 0.25)))
    assert tag.texts == ["text 0", "text 1", "text 2", "text 3"]
    assert tag.labels.tolist() == [1, 0, 1, 0]
    assert tag.edge_index.tolist() == [[0, 1, 2, 3], [1, 0, 3, 2]]
    assert tag.notes["self_loops_dropped"] == 1
    assert tag.notes["repeated_edges_merged"] == 2  # 1->0 mirrors 0->1; 2->3 given twice
    assert tag.num_edges == 2


def test_undirected_edge_index_is_symmetric_and_sorted():
    src = torch.tensor([0, 3, 1, 4, 4])
    dst = torch.tensor([3, 0, 2, 1, 4])
    edge_index, notes = undirected_edge_index(src, dst, 5)
    pairs = set(map(tuple, edge_index.t().tolist()))
    assert pairs == {(0, 3), (3, 0), (1, 2), (2, 1), (1, 4), (4, 1)}
    keys = edge_index[0] * 5 + edge_index[1]
    assert torch.all(keys[1:] > keys[:-1])
    assert notes == {"self_loops_dropped": 1, "repeated_edges_merged": 1}


def test_split_file_is_used_and_nodes_outside_it_are_unused(tmp_path):
    split = {"train": [0, 1, 2, 3], "valid": [4, 5], "test": [6]}
    tag = load_tag_folder(write_tag_folder(tmp_path / "g", split=split))
    assert tag.split_description == "split.json"
    assert torch.nonzero(tag.train_mask).flatten().tolist() == [0, 1, 2, 3]
    assert torch.nonzero(tag.val_mask).flatten().tolist() == [4, 5]
    assert torch.nonzero(tag.test_mask).flatten().tolist() == [6]
    ignored = load_tag_folder(tmp_path / "g", SplitSpec(use_dataset_split=False))
    assert ignored.split_description.startswith("random")


def test_random_split_is_seeded_disjoint_and_sized():
    a = make_demo_tag(split=SplitSpec(seed=3))
    b = make_demo_tag(split=SplitSpec(seed=3))
    c = make_demo_tag(split=SplitSpec(seed=4))
    assert torch.equal(a.train_mask, b.train_mask) and not torch.equal(a.train_mask, c.train_mask)
    assert (a.train_mask.int() + a.val_mask.int() + a.test_mask.int()).max() == 1
    assert [int(m.sum()) for m in (a.train_mask, a.val_mask, a.test_mask)] == [180, 60, 60]


def test_demo_is_deterministic_and_learnable_structure():
    a, b = make_demo_tag(), make_demo_tag()
    assert a.content_hash == b.content_hash and a.texts == b.texts
    assert a.num_nodes == 300 and a.num_classes == 5
    same_class = (a.labels[a.edge_index[0]] == a.labels[a.edge_index[1]]).float().mean()
    assert same_class > 0.7  # homophilous edges


def test_content_hash_tracks_content_not_split(tmp_path):
    base = load_tag_folder(write_tag_folder(tmp_path / "a"))
    resplit = load_tag_folder(tmp_path / "a", SplitSpec(seed=9))
    assert base.content_hash == resplit.content_hash
    nodes = [{"id": i, "label": i % 2, "text": f"paper {i}"} for i in range(8)]
    changed = load_tag_folder(write_tag_folder(tmp_path / "b", nodes=nodes))
    assert changed.content_hash != base.content_hash


def test_named_dataset_resolves_under_data_root(tmp_path):
    write_tag_folder(tmp_path / "root" / "mine")
    tag = load_tag("mine", data_root=tmp_path / "root")
    assert tag.name == "mine" and tag.num_nodes == 8
    with pytest.raises(DataError, match="unknown dataset 'other'.*available: demo, mine"):
        load_tag("other", data_root=tmp_path / "root")


def test_data_root_from_environment(tmp_path, monkeypatch):
    write_tag_folder(tmp_path / "envroot" / "mine")
    monkeypatch.setenv("TALK_DATA_ROOT", str(tmp_path / "envroot"))
    assert load_tag("mine").num_nodes == 8


@pytest.mark.parametrize("fractions", [(0.6, 0.3, 0.3), (0.0, 0.5, 0.5), (-0.1, 0.5, 0.5)])
def test_bad_split_fractions(fractions):
    with pytest.raises(SettingsError, match="split"):
        SplitSpec(fractions=fractions)


def test_empty_texts_are_allowed_and_counted(tmp_path):
    nodes = [{"id": i, "label": i % 2, "text": "" if i in (2, 5) else "x"} for i in range(8)]
    tag = load_tag_folder(write_tag_folder(tmp_path / "g", nodes=nodes))
    assert tag.notes["empty_texts"] == 2


@pytest.mark.skipif(not (SHARED_DATASETS / "cora").is_dir(), reason="../shared/datasets/cora is absent")
def test_real_datasets_match_their_published_counts():
    cora = load_tag("cora", data_root=SHARED_DATASETS)
    stats = json.loads((SHARED_DATASETS / "cora" / "stats.json").read_text())
    assert cora.num_nodes == stats["nodes"] and cora.num_edges == stats["undirected_edges_unique_no_selfloops"]
    assert cora.class_counts() == list(stats["class_counts"].values())
    arxiv = load_tag("arxiv_2023", data_root=SHARED_DATASETS)
    assert arxiv.split_description == "split.json"
    assert [int(m.sum()) for m in (arxiv.train_mask, arxiv.val_mask, arxiv.test_mask)] == [19461, 4682, 668]
    assert arxiv.num_edges == 303379 and arxiv.notes["self_loops_dropped"] == 17
