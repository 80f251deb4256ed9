"""Helpers of the benchmark scripts whose mistakes would bias a published decision."""

from __future__ import annotations

import sys

import torch

from conftest import REPO
from talk_cli.data import make_demo_tag

sys.path.insert(0, str(REPO / "benchmarks"))
from ablations import validation_halves  # noqa: E402


def test_validation_halves_split_only_the_validation_nodes_the_same_way_every_time():
    tag = make_demo_tag()
    select_on, judge_with = validation_halves(tag)
    assert not (select_on.val_mask & judge_with.val_mask).any()  # no node both selects and judges
    assert torch.equal(select_on.val_mask | judge_with.val_mask, tag.val_mask)
    assert abs(int(select_on.val_mask.sum()) - int(judge_with.val_mask.sum())) <= 1
    for half in (select_on, judge_with):
        assert torch.equal(half.train_mask, tag.train_mask) and torch.equal(half.test_mask, tag.test_mask)
    again, _ = validation_halves(tag)  # every row and run of a script must split alike
    assert torch.equal(again.val_mask, select_on.val_mask)
    val = torch.nonzero(tag.val_mask).flatten()
    assert not torch.equal(torch.nonzero(select_on.val_mask).flatten(), val[: len(val) // 2])  # a random half, not the first ids
