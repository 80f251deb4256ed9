"""`talk import`: a TAG given as tables (a node table and an edge table, in CSV, TSV, Parquet or
JSON Lines) written as the folder format of docs/data-format.md. Ids and class labels are kept
exactly as written (a CSV's "007" stays "007"; a JSON or Parquet number is its digits): nodes are
numbered in table order (the original id is kept as `orig_id`, a string) and classes in sorted
order of their names (whole numbers by value first, then the rest as text). The folder is built beside `out`, checked by the
folder loader, and only then moved into place."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from talk_cli.atomic import check_replaceable, staged_directory
from talk_cli.data.columns import Columns
from talk_cli.data.folder import load_tag_folder
from talk_cli.data.split import SplitSpec
from talk_cli.errors import DataError

TEXT_SEPARATOR = "\n"  # between the text columns of a node, as titles and abstracts are joined
# Every column is read as written: CSV and TSV cells as strings (so "007" stays "007"), JSON and
# Parquet values with their own types. Only an empty cell, a JSON null or a Parquet null is missing.
READERS = {
    ".csv": lambda path: pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]),
    ".tsv": lambda path: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""]),
    ".parquet": pd.read_parquet,
    ".jsonl": lambda path: read_json_lines(path),
}
WRITTEN_FILES = ("nodes.jsonl", "edges.csv", "labels.txt")  # what `talk import` writes (nodes.jsonl marks it), and all it may replace
NUMBER = re.compile(r"-?[0-9]+")


@dataclass
class ImportReport:
    out: Path
    num_nodes: int
    num_edges: int  # edge rows written (before the loader symmetrises and merges them)
    label_names: list[str]
    dropped_edges: int  # rows naming an id that is not in the node table
    empty_texts: int
    notes: list[str] = field(default_factory=list)
    replaced: bool = False  # --force replaced an earlier import


def read_json_lines(path: Path) -> pd.DataFrame:
    """One JSON object per line, each value exactly as parsed (no type or date guessing); a key
    that a line lacks is a missing value there."""
    records = []
    with open(path, encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"line {line_no}, column {err.colno}: malformed JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"line {line_no}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return pd.DataFrame.from_records(records)


def read_table(path: Path) -> pd.DataFrame:
    """The table with every value as read (an object column each) and every missing value None."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown table format {path.suffix!r}; give a .csv, .tsv, .parquet or .jsonl file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = reader(path)
    except Exception as err:  # each reader raises its own kinds (parser, arrow, JSON, encoding errors)
        raise DataError(f"{path}: cannot be read as {path.suffix[1:]}: {str(err).splitlines()[0][:200]}") from None
    table.columns = [str(name) for name in table.columns]
    table = table.astype(object)
    return table.where(table.notna(), None)


def require_columns(table: pd.DataFrame, path: Path, names: list[str]) -> None:
    for name in names:
        if name not in table.columns:
            raise DataError(f"{path}: no column {name!r} (columns: {', '.join(map(repr, table.columns))})")


def as_text(value: object) -> str | None:
    """A cell as the string it was written as (None when missing). A whole float is the integer
    it holds: Parquet and pandas store an integer column with a gap as floats."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return str(value).lower()  # as JSON writes it
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return as_text(value.item())
    return str(value)


def unstorable(value: str) -> str | None:
    """Why an id or a class name cannot be stored faithfully (labels.txt holds one name per line,
    and a terminal would act on a control character), or None."""
    if not value.strip():
        return "is empty"
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"holds the control character {char!r}"
        if category == "Cs":
            return f"holds an unpaired surrogate {char!r}"
    return None


def keys(table: pd.DataFrame, path: Path, name: str, what: str) -> list[str]:
    """A column of ids or class names as strings, every one present and storable."""
    values = []
    for row, value in enumerate(table[name], start=1):
        text = as_text(value)
        if text is None:
            raise DataError(f"{path}: row {row}, column {name!r}: no value")
        problem = unstorable(text)
        if problem:
            raise DataError(f"{path}: row {row}, column {name!r}: the {what} {text!r} {problem}")
        values.append(text)
    return values


def class_order(name: str) -> tuple:
    """Class names in order: whole numbers (ASCII digits) by value first, then the rest as text."""
    return (0, int(name), name) if NUMBER.fullmatch(name) else (1, 0, name)


def node_records(nodes: pd.DataFrame, path: Path, columns: Columns) -> tuple[list[dict], list[str], dict[str, int], int]:
    """nodes.jsonl's records, the class names, original id -> node id, and how many texts are empty."""
    require_columns(nodes, path, [columns.id, *columns.text, columns.label])
    ids = keys(nodes, path, columns.id, "id")
    first_row: dict[str, int] = {}
    for row, key in enumerate(ids, start=1):
        if key in first_row:
            raise DataError(f"{path}: row {row}, column {columns.id!r}: id {key!r} repeats row {first_row[key]}")
        first_row[key] = row
    parts = [[as_text(value) or "" for value in nodes[name]] for name in columns.text]
    for name, column in zip(columns.text, parts):
        if all(not text.strip() for text in column):
            raise DataError(f"{path}: column {name!r}: every text is empty")
    texts = [TEXT_SEPARATOR.join(p for p in row if p) for row in zip(*parts)]
    labels = keys(nodes, path, columns.label, "class name")
    names = sorted(set(labels), key=class_order)
    class_of = {name: index for index, name in enumerate(names)}
    records = [{"id": index, "orig_id": key, "label": class_of[label], "text": text} for index, (key, label, text) in enumerate(zip(ids, labels, texts))]
    return records, names, {key: index for index, key in enumerate(ids)}, sum(1 for text in texts if not text)


def edge_rows(edges: pd.DataFrame, path: Path, columns: Columns, node_of: dict[str, int]) -> tuple[list[tuple[int, int]], int]:
    """(src, dst) node ids of the edge rows whose both ends are known, and how many were not. Ids
    match as the strings they were written as; a table none of whose rows names two known ids is
    refused (its ids are not the node table's)."""
    require_columns(edges, path, [columns.source, columns.target])
    sources, targets = keys(edges, path, columns.source, "id"), keys(edges, path, columns.target, "id")
    pairs = [(node_of.get(s), node_of.get(t)) for s, t in zip(sources, targets)]
    kept = [(s, t) for s, t in pairs if s is not None and t is not None]
    if pairs and not kept:
        unknown = next(key for key in (*sources, *targets) if key not in node_of)
        example = next(iter(node_of))
        raise DataError(
            f"{path}: none of its {len(pairs)} row(s) names two ids of the node table (row 1 names {unknown!r}; the node table's ids "
            f"look like {example!r}); ids match exactly as written"
        )
    return kept, len(pairs) - len(kept)


def json_line(record: dict) -> str:
    """One nodes.jsonl line. A text with an unpaired surrogate (possible in JSON Lines and Parquet
    input) is written with escapes, which UTF-8 can hold; the folder reader then replaces it and
    says so."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record)
    return line


def write_folder(folder: Path, records: list[dict], names: list[str], pairs: list[tuple[int, int]]) -> None:
    with open(folder / "nodes.jsonl", "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json_line(record) + "\n")
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8", newline="\n")
    (folder / "edges.csv").write_text("src,dst\n" + "".join(f"{s},{t}\n" for s, t in pairs), encoding="utf-8", newline="\n")
    for name in ("nodes.jsonl", "labels.txt", "edges.csv"):
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())


def import_tables(nodes_path: Path, edges_path: Path, out: Path, columns: Columns = Columns(), force: bool = False) -> ImportReport:
    """Write the TAG folder `out` from a node table and an edge table (docs/data-format.md)."""
    out = Path(out)
    replaced = check_replaceable(out, force, WRITTEN_FILES, "a TAG folder", "files talk import did not write", DataError)
    records, names, node_of, empty = node_records(read_table(nodes_path), Path(nodes_path), columns)
    pairs, dropped = edge_rows(read_table(edges_path), Path(edges_path), columns, node_of)
    with staged_directory(out) as staging:
        write_folder(staging, records, names, pairs)
        try:
            # Never publish what the loader would refuse. Every node counts as training here: a
            # split is chosen when the folder is used (`--split-fractions`, `--split-seed`, split.json).
            tag = load_tag_folder(staging, SplitSpec((1.0, 0.0, 0.0), use_dataset_split=False), name=out.name)
        except DataError as err:
            raise DataError(str(err).replace(str(staging), str(out))) from None
    notes = [f"{count} {what}" for what, count in tag.notes.items() if count]
    return ImportReport(out, len(records), len(pairs), names, dropped, empty, notes, replaced)
