"""Messy tables and hostile strings: `talk import` keeps what it is given exactly or refuses it in
one line (exit 2, nothing left behind), no user string is read as markup, outputs follow the
umask, and --force replaces only what the tool wrote."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from conftest import make_bundle, run_cli, write_tag_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talk_cli import load_bundle
from talk_cli.bundle import write_bundle
from talk_cli.data import SplitSpec
from talk_cli.data import load_tag_folder as load_with_split

HOSTILE = ["[/x]", "[bold]", "\x1b[31m", "a\nb"]
SHOWN = {"[/x]": "[/x]", "[bold]": "[bold]", "\x1b[31m": "\\x1b[31m", "a\nb": "a\\nb"}  # as a message prints them


def load_tag_folder(folder):
    """The imported folder with every node in training: these tables are too small for a split."""
    return load_with_split(folder, SplitSpec((1.0, 0.0, 0.0), use_dataset_split=False))


def write(table: pd.DataFrame, path) -> None:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        table.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".parquet":
        table.to_parquet(path)
    else:
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_dict("records")))


def import_(tmp_path, nodes: pd.DataFrame, edges: pd.DataFrame, out, *flags, suffix=".csv", edge_suffix=None):
    write(nodes, tmp_path / f"nodes{suffix}")
    write(edges, tmp_path / f"edges{edge_suffix or suffix}")
    return run_cli("import", tmp_path / f"nodes{suffix}", "--edges", tmp_path / f"edges{edge_suffix or suffix}", "--out", out, *flags)


def small_nodes(ids=("a", "b", "c", "d"), labels=("x", "x", "y", "y")) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids), "text": [f"text {i}" for i in range(len(ids))], "label": list(labels)})


def small_edges(ids=("a", "b", "c", "d")) -> pd.DataFrame:
    return pd.DataFrame({"src": list(ids[:-1]), "dst": list(ids[1:])})


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    return lines[0]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_user_strings_in_messages_are_printed_as_written(tmp_path, hostile):
    write(small_nodes(), tmp_path / "n.csv")
    write(small_edges(), tmp_path / "e.csv")
    column = run_cli("import", tmp_path / "n.csv", "--edges", tmp_path / "e.csv", "--out", tmp_path / "t", "--id-column", hostile)
    assert f"no column {hostile!r}" in one_line_error(column)
    bundle = run_cli("inspect", tmp_path / hostile)
    assert SHOWN[hostile] in one_line_error(bundle)
    table = run_cli("import", tmp_path / f"{hostile}.csv", "--edges", tmp_path / "e.csv", "--out", tmp_path / "t")
    assert SHOWN[hostile] in one_line_error(table)


@pytest.mark.parametrize("hostile", ["[/x]", "[bold]"])
def test_markup_in_labels_paths_and_dataset_names_survives_every_command(tmp_path, tiny_model_dir, hostile):
    out = tmp_path / f"tag{hostile}"
    result = import_(tmp_path, small_nodes(labels=(hostile, hostile, "y", "y")), small_edges(), out)
    assert result.exit_code == 0, result.output
    assert hostile in result.stderr and str(out) in result.stderr
    assert load_tag_folder(out).label_names == [hostile, "y"]
    bundle, name = tmp_path / f"bundle{hostile}", "data[b]"  # a folder name cannot hold a '/'
    made = run_cli("distill", "--dataset", write_tag_folder(tmp_path / name, labels=[hostile, "y"]), "--model", tiny_model_dir,
                   "--size", "2", "--steps", "2", "--seq-len", "6", "--invert-steps", "2", "--out", bundle)  # fmt: skip
    assert made.exit_code == 0, made.output
    assert f"bundle: {bundle}" in made.stderr and f"dataset {name}:" in made.stderr
    shown = run_cli("inspect", bundle)
    assert shown.exit_code == 0 and hostile in shown.stdout


def test_ids_are_kept_exactly_as_written(tmp_path):
    nodes = pd.DataFrame({"id": ["007", "7", "0001", "1"], "text": ["a", "b", "c", "d"], "label": ["x", "x", "y", "y"]})
    result = import_(tmp_path, nodes, pd.DataFrame({"src": ["007", "0001"], "dst": ["7", "1"]}), tmp_path / "t")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "t" / "nodes.jsonl").read_text().splitlines()]
    assert [r["orig_id"] for r in records] == ["007", "7", "0001", "1"]
    assert load_tag_folder(tmp_path / "t").edge_index.shape[1] == 4  # 007-7 and 0001-1, both directions


def test_padded_string_ids_in_json_lines_match_a_csv_edge_table(tmp_path):
    nodes = small_nodes(ids=("001", "002", "003", "004"))
    result = import_(tmp_path, nodes, small_edges(ids=("001", "002", "003", "004")), tmp_path / "t", suffix=".jsonl", edge_suffix=".csv")
    assert result.exit_code == 0, result.output
    assert load_tag_folder(tmp_path / "t").num_edges == 3 and "dropped" not in result.stderr


def test_an_edge_table_that_names_no_node_is_refused(tmp_path):
    result = import_(tmp_path, small_nodes(), pd.DataFrame({"src": ["p", "q"], "dst": ["q", "r"]}), tmp_path / "t")
    assert "none of its 2 row(s) names two ids of the node table" in one_line_error(result)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("label, problem", [("two\nlines", "control character '\\n'"), ("bell\x07", "control character '\\x07'"), ("  ", "is empty")])
def test_a_class_name_that_cannot_be_stored_is_refused(tmp_path, label, problem):
    result = import_(tmp_path, small_nodes(labels=("x", label, "y", "y")), small_edges(), tmp_path / "t", suffix=".jsonl")
    line = one_line_error(result)
    assert "row 2, column 'label'" in line and problem in line and str(tmp_path / "nodes.jsonl") in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edges.jsonl", "nodes.jsonl"]


def test_class_names_of_any_kind_sort_without_error(tmp_path):
    result = import_(tmp_path, small_nodes(labels=("²", "10", "9", "x")), small_edges(), tmp_path / "t")
    assert result.exit_code == 0, result.output
    assert load_tag_folder(tmp_path / "t").label_names == ["9", "10", "x", "²"]


def test_a_categorical_parquet_text_column_with_a_gap_imports(tmp_path):
    nodes = small_nodes()
    nodes["text"] = pd.Categorical(["one", None, "three", "four"])
    result = import_(tmp_path, nodes, small_edges(), tmp_path / "t", suffix=".parquet")
    assert result.exit_code == 0, result.output
    assert load_tag_folder(tmp_path / "t").texts == ["one", "", "three", "four"]


def test_missing_values_are_the_same_in_every_format(tmp_path):
    outcomes = set()
    for suffix in (".csv", ".tsv", ".parquet", ".jsonl"):
        folder = tmp_path / suffix[1:]
        folder.mkdir()
        nodes = pd.DataFrame({"id": ["a", "b", "c"], "text": ["t", "u", "v"], "label": ["x", None, "y"]})
        outcomes.add(one_line_error(import_(folder, nodes, small_edges(ids=("a", "b", "c")), folder / "t", suffix=suffix)).split(": ", 2)[-1])
    assert outcomes == {"row 2, column 'label': no value"}


def test_an_unwritable_out_is_one_line_and_leaves_nothing(tmp_path):
    write(small_nodes(), tmp_path / "n.csv")
    write(small_edges(), tmp_path / "e.csv")
    (tmp_path / "file").write_text("not a folder")
    under_a_file = run_cli("import", tmp_path / "n.csv", "--edges", tmp_path / "e.csv", "--out", tmp_path / "file" / "t")
    assert str(tmp_path / "file") in one_line_error(under_a_file)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that may write anywhere (root): a read-only folder is not read-only")
        result = run_cli("import", tmp_path / "n.csv", "--edges", tmp_path / "e.csv", "--out", locked / "deep" / "t")
        assert "cannot write here" in one_line_error(result)
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_a_failed_write_removes_the_folders_it_made(tmp_path):
    from talk_cli.atomic import staged_directory

    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "new" / "deeper" / "t") as staging:
            (staging / "part").write_text("half")
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


def test_a_class_of_one_node_is_imported_and_using_it_names_options_that_exist(tmp_path, tiny_model_dir):
    nodes = pd.DataFrame({"id": list("abcdefgh"), "text": ["galaxy star"] * 4 + ["recipe oven"] * 3 + ["market bond"], "label": list("xxxxyyyz")})
    result = import_(tmp_path, nodes, small_edges(ids=tuple("abcdefgh")), tmp_path / "t")
    assert result.exit_code == 0, result.output
    for seed in range(10):  # a random split that leaves the single node out of training
        made = run_cli("encode", "--dataset", tmp_path / "t", "--model", tiny_model_dir, "--split-seed", str(seed), "--quiet")
        if made.exit_code == 2:
            line = one_line_error(made)
            assert "no training node" in line and "--split-seed" in line and "--split-fractions" in line and "split.json" in line
            break
    else:
        pytest.fail("no seed left the single-node class out of training")


def test_outputs_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        result = import_(tmp_path, small_nodes(), small_edges(), tmp_path / "t")
        assert result.exit_code == 0, result.output
        write_bundle(make_bundle(), tmp_path / "b")
    finally:
        os.umask(previous)
    for folder, names in (
        (tmp_path / "t", ["nodes.jsonl", "edges.csv", "labels.txt"]),
        (tmp_path / "b", ["manifest.yaml", "synthetic.safetensors", "README.md"]),
    ):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
        for name in names:
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_force_replaces_only_what_the_tool_wrote(tmp_path):
    assert import_(tmp_path, small_nodes(), small_edges(), tmp_path / "t").exit_code == 0
    again = import_(tmp_path, small_nodes(), small_edges(), tmp_path / "t", "--force")
    assert again.exit_code == 0 and again.stderr.startswith(f"replaced {tmp_path / 't'}")
    (tmp_path / "t" / "notes.txt").write_text("mine")
    (tmp_path / "t" / "split.json").write_text('{"train": [0]}')
    refused = import_(tmp_path, small_nodes(), small_edges(), tmp_path / "t", "--force")
    assert "holds files talk import did not write ('notes.txt', 'split.json')" in one_line_error(refused)
    assert (tmp_path / "t" / "notes.txt").read_text() == "mine"
    write_bundle(make_bundle(), tmp_path / "b")
    (tmp_path / "b" / "plot.png").write_bytes(b"mine")
    with pytest.raises(Exception, match="holds files that are not a bundle's"):
        write_bundle(make_bundle(), tmp_path / "b", force=True)
    assert (tmp_path / "b" / "plot.png").read_bytes() == b"mine" and load_bundle(tmp_path / "b")


# Any Unicode a user may have: names, ids and labels that a table can hold, texts with anything.
NAME = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(NAME, min_size=2, max_size=6, unique=True),
    labels=st.lists(NAME, min_size=6, max_size=6),
    texts=st.lists(TEXT, min_size=6, max_size=6),
    column=NAME,
    suffix=st.sampled_from([".csv", ".tsv", ".parquet", ".jsonl"]),
)
def test_any_table_imports_exactly_or_is_refused_in_one_line(tmp_path_factory, ids, labels, texts, column, suffix):
    tmp_path = tmp_path_factory.mktemp("table")
    n = len(ids)
    nodes = pd.DataFrame({"id": ids, column + " text": texts[:n], "label": labels[:n]})
    edges = pd.DataFrame({"src": ids[:-1], "dst": ids[1:]})
    result = import_(tmp_path, nodes, edges, tmp_path / "t", "--text-column", column + " text", suffix=suffix)
    if result.exit_code != 0:
        one_line_error(result)
        assert not (tmp_path / "t").exists()
        return
    tag = load_tag_folder(tmp_path / "t")
    records = [json.loads(line) for line in (tmp_path / "t" / "nodes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["orig_id"] for r in records] == ids
    assert [tag.label_names[int(c)] for c in tag.labels] == labels[:n]
    assert tag.texts == texts[:n]
    pairs = {tuple(sorted(pair)) for pair in tag.edge_index.T.tolist() if pair[0] != pair[1]}
    assert pairs == {tuple(sorted((i, i + 1))) for i in range(n - 1)}
