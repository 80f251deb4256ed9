"""Helpers of the benchmark scripts whose mistakes would bias a published decision."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

from benchmarks.ablations import validation_halves
from talk_cli.data import make_demo_tag


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


def log_section(name: str, date: str, rows: list[str], runs: int = 3) -> str:
    return "\n".join([
        f"<!-- {name}:begin -->", f"## cora ({runs} runs per row, ratios 0.01)", "",
        f"Command: `python -m benchmarks.results --section {name}`  ", f"Machine: AMD EPYC, 2 cores, torch 2.13.0+cpu (2 threads), {date}  ", "",
        "| method | ratio | nodes | test acc % | macro-F1 % | % of full | distil s | eval s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, f"<!-- {name}:end -->", "",
    ])  # fmt: skip


def test_the_results_page_keeps_the_latest_measurement_of_each_row(tmp_path, monkeypatch):
    """docs/results.md is generated from the log: one table per protocol and dataset, each row from
    the section that measured it last, whatever the order of the log; a section written for the
    page goes into the log and the page follows."""
    from benchmarks import common, results_page

    newer = log_section("results-cora-new", "2026-12-08", ["| talk | 0.01 | 16 | 86.00 ± 0.10 | 85 | 99.0 | 10.0 | 5 | 600 |"])
    older = log_section("results-cora", "2026-11-24", [
        "| full | 1.0 | 1625 | 86.51 ± 0.15 | 85 | 100.0 | - | 24 | 690 |",
        "| talk | 0.01 | 16 | 85.58 ± 0.99 | 84 | 98.9 | 45.7 | 6 | 639 |",
        "| herding | 0.01 | 16 | 77.20 ± 0.92 | 73 | 89.2 | 0.5 | 5 | 645 |",
    ])  # fmt: skip
    log, page = tmp_path / "log.md", tmp_path / "results.md"
    log.write_text(newer + older)
    results_page.write_page(log, page)
    text = page.read_text()
    assert text.count("## gnn protocol: cora") == 1 and "arxiv_2023" not in text.split("## Everything else")[0].split("## gnn protocol: cora")[1]
    # % of full divides by the full row this table shows (86.51), whatever the row's own section said
    assert "| talk | 0.01 | 16 | 86.00 ± 0.10 | 99.4% | 10.0 | 3 | `results-cora-new` |" in text
    assert "85.58" not in text and "| herding | 0.01 | 16 | 77.20 ± 0.92 | 89.2% | 0.5 | 3 | `results-cora` |" in text
    monkeypatch.setattr(results_page, "LOG", log)
    monkeypatch.setattr(results_page, "PAGE", page.resolve())
    common.write_section(
        page,
        "results-cora-later",
        log_section("x", "2026-12-09", ["| herding | 0.01 | 16 | 78.00 ± 0.50 | 74 | 90.0 | 0.5 | 5 | 645 |"]).split("\n", 1)[1].rsplit("<!-- x:end -->", 1)[0],
    )
    assert "results-cora-later" in log.read_text() and "| herding | 0.01 | 16 | 78.00 ± 0.50 |" in page.read_text()


def test_the_results_page_leaves_out_rows_measured_before_their_method_last_changed(tmp_path):
    from benchmarks import results_page

    since = results_page.CURRENT_SINCE["talk"]
    older = log_section("results-cora", "2026-11-24", [
        "| full | 1.0 | 1625 | 86.51 ± 0.15 | 85 | 100.0 | - | 24 | 690 |",
        "| talk | 0.01 | 16 | 85.58 ± 0.99 | 84 | 98.9 | 45.7 | 6 | 639 |",
        "| herding | 0.01 | 16 | 77.20 ± 0.92 | 73 | 89.2 | 0.5 | 5 | 645 |",
    ])  # fmt: skip
    current = log_section("results-cora-talk", since, ["| talk | 0.02 | 32 | 86.10 ± 0.20 | 85 | 99.5 | 30.0 | 6 | 640 |"])
    log, page = tmp_path / "log.md", tmp_path / "results.md"
    log.write_text(older + current)
    results_page.write_page(log, page)
    text = page.read_text()
    assert "85.58" not in text and "| talk | 0.02 | 32 | 86.10 ± 0.20 |" in text  # the old talk row is left out, the current one kept
    assert "| herding | 0.01 | 16 | 77.20 ± 0.92 |" in text and "| full | 1.0 | 1625 | 86.51 ± 0.15 | 100.0% | - | 3 |" in text  # runs: not per seed


def test_every_percent_of_full_on_the_results_page_is_its_rows_accuracy_over_the_tables_full_row():
    import re

    text = (REPO / "docs" / "results.md").read_text()
    checked = 0
    for table in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
        if not rows:
            continue
        header, rows = rows[0], rows[1:]
        for column, reference_method in (("% of full", "full"), ("% of joint full", "full (joint)")):
            if column not in header:
                continue
            full = next(float(r[header.index("test acc %")].split()[0]) for r in rows if r[0] == reference_method)
            for row in rows:
                shown = row[header.index(column)]
                assert float(shown.rstrip("%")) == pytest.approx(100 * float(row[header.index("test acc %")].split()[0]) / full, abs=0.051), row
                checked += 1
    assert checked > 10
