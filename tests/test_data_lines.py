"""Reading the folder format's lines: JSON Lines split at \\n only, UTF-8 with or without a
byte-order mark, LF or CRLF, and errors that name the line and column an editor shows."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli, write_tag_folder
from hypothesis import given, settings
from hypothesis import strategies as st

from talk_cli.data import SplitSpec, load_tag_folder
from talk_cli.errors import DataError

# Every code point that str.splitlines() treats as a line boundary besides \n and \r.
LINE_BREAK_LIKE = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
AWKWARD = LINE_BREAK_LIKE + ["\n", "\r", "\r\n", '"', "\\", "\t", "\x00", "\ufeff", "\U0001f600"]


def texts(surrogates: bool) -> st.SearchStrategy[str]:
    """Text from all of Unicode, heavy in the characters that break line readers; with lone
    surrogates only where a writer can escape them (json.dumps with ensure_ascii)."""
    any_character = st.characters(exclude_categories=() if surrogates else ("Cs",))
    return st.lists(st.one_of(any_character, st.sampled_from(AWKWARD)), max_size=12).map("".join)


def write_nodes(folder: Path, node_texts: list[str], ensure_ascii: bool, newline: str, bom: bool) -> bytes:
    """One class, every node in it; nodes.jsonl as json.dumps writes each record."""
    lines = [json.dumps({"id": i, "label": 0, "text": text}, ensure_ascii=ensure_ascii) for i, text in enumerate(node_texts)]
    data = ("\ufeff" if bom else "") + "".join(line + newline for line in lines)
    raw = data.encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nodes.jsonl").write_bytes(raw)
    (folder / "edges.csv").write_bytes(f"src,dst{newline}".encode())
    (folder / "labels.txt").write_bytes(f"only{newline}".encode())
    return raw


def json_loads_per_line(raw: bytes) -> list[str]:
    """The reference reading: split the bytes at \\n, drop one \\r before it, decode, json.loads."""
    lines = raw.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:-1]
    return [json.loads(line.removesuffix(b"\r").decode("utf-8"))["text"] for line in lines]


def unpaired_to_replacement(text: str) -> str:
    """A str from json.loads holds a surrogate only when its escape had no partner."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


@settings(max_examples=60, deadline=None)
@given(
    node_texts=st.lists(texts(surrogates=True), min_size=1, max_size=6),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_loader_reads_what_json_loads_reads_line_by_line(node_texts, newline, bom):
    with tempfile.TemporaryDirectory() as tmp:
        raw = write_nodes(Path(tmp) / "g", node_texts, ensure_ascii=True, newline=newline, bom=bom)
        tag = load_tag_folder(Path(tmp) / "g")
    expected = json_loads_per_line(raw)
    assert tag.texts == [unpaired_to_replacement(text) for text in expected]
    assert tag.notes["texts_with_unpaired_surrogates"] == sum(text != unpaired_to_replacement(text) for text in expected)


@settings(max_examples=40, deadline=None)
@given(node_texts=st.lists(texts(surrogates=False), min_size=1, max_size=6), newline=st.sampled_from(["\n", "\r\n"]))
def test_escaping_and_line_endings_do_not_change_the_content_or_its_hash(node_texts, newline):
    with tempfile.TemporaryDirectory() as tmp:
        raw = write_nodes(Path(tmp) / "raw", node_texts, ensure_ascii=False, newline=newline, bom=False)
        escaped = write_nodes(Path(tmp) / "escaped", node_texts, ensure_ascii=True, newline="\n", bom=True)
        as_raw, as_escaped = load_tag_folder(Path(tmp) / "raw"), load_tag_folder(Path(tmp) / "escaped")
    assert as_raw.texts == node_texts == json_loads_per_line(raw) == json_loads_per_line(escaped)
    assert as_raw.content_hash == as_escaped.content_hash


@pytest.mark.parametrize("character", LINE_BREAK_LIKE, ids=[f"U+{ord(c):04X}" for c in LINE_BREAK_LIKE])
def test_a_line_break_like_character_in_a_text_loads_and_encodes(character, tmp_path, tiny_model_dir):
    """Written raw (ensure_ascii=False), as the report's U+2029 title was; `talk encode` must take it."""
    texts_with_break = [f"galaxy star{character}orbit {i}" for i in range(4)] + [f"recipe oven {i}" for i in range(4)]
    folder = tmp_path / "g"
    folder.mkdir()
    lines = [json.dumps({"id": i, "label": int(i >= 4), "text": t}, ensure_ascii=False) for i, t in enumerate(texts_with_break)]
    (folder / "nodes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "edges.csv").write_text("src,dst\n0,1\n4,5\n")
    (folder / "labels.txt").write_text(f"astro{character}nomy\ncooking\n", encoding="utf-8")
    tag = load_tag_folder(folder, SplitSpec(fractions=(0.5, 0.25, 0.25)))
    assert tag.texts == texts_with_break and tag.label_names == [f"astro{character}nomy", "cooking"]
    result = run_cli("encode", "--dataset", folder, "--model", tiny_model_dir, "--split-fractions", "0.5,0.25,0.25", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == [8, 16]


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_utf8_with_or_without_bom_and_lf_or_crlf_give_the_same_graph(bom, newline, tmp_path):
    reference = load_tag_folder(write_tag_folder(tmp_path / "reference", split={"train": [0, 1, 2, 3], "valid": [4, 5], "test": [6, 7]}))
    folder = write_tag_folder(tmp_path / "variant", split={"train": [0, 1, 2, 3], "valid": [4, 5], "test": [6, 7]})
    for name in ("nodes.jsonl", "edges.csv", "labels.txt", "split.json"):
        text = (folder / name).read_text(encoding="utf-8").replace("\n", newline)
        (folder / name).write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    tag = load_tag_folder(folder)
    assert (tag.texts, tag.label_names, tag.content_hash) == (reference.texts, reference.label_names, reference.content_hash)
    assert tag.edge_index.equal(reference.edge_index) and tag.train_mask.equal(reference.train_mask)


def test_malformed_json_names_line_and_the_column_an_editor_shows(tmp_path):
    folder = write_tag_folder(tmp_path / "g")
    lines = (folder / "nodes.jsonl").read_text().splitlines()
    lines[2] = '{"id": 2, "label": 0, "text": "caf\u00e9 \u2029 open'  # unterminated; column 31 starts the string
    (folder / "nodes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_tag_folder(folder)
    assert str(caught.value) == f"{folder / 'nodes.jsonl'} line 3, column 31: malformed JSON (Unterminated string starting)"
    assert lines[2][30] == '"'


def test_invalid_utf8_names_line_and_column(tmp_path):
    folder = write_tag_folder(tmp_path / "g")
    data = (folder / "nodes.jsonl").read_bytes().split(b"\n")
    data[4] = data[4].replace(b"paper", b"pa\xe9per")  # Latin-1 é: one byte, not UTF-8
    (folder / "nodes.jsonl").write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match=r"nodes.jsonl line 5, column 34: not valid UTF-8 \(byte 0xe9"):
        load_tag_folder(folder)
    assert data[4].index(b"\xe9") == 33


def test_utf16_is_named(tmp_path):
    folder = write_tag_folder(tmp_path / "g")
    (folder / "labels.txt").write_bytes("astronomy\ncooking\n".encode("utf-16"))
    with pytest.raises(DataError, match="labels.txt: the file is UTF-16"):
        load_tag_folder(folder)
