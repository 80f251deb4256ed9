"""`talk import`: a TAG given as tables (a node table and an edge table, in CSV, TSV, Parquet or
JSON Lines) written as the folder format of docs/data-format.md. Node ids and class labels may be
strings or integers: nodes are numbered in table order (the original id is kept as `orig_id`)
and classes in sorted order of their names. The folder is built beside `out`, checked by the
folder loader, and only then moved into place."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from talk_cli.atomic import staged_directory
from talk_cli.data.folder import load_tag_folder
from talk_cli.errors import DataError

TEXT_SEPARATOR = "\n"  # between the text columns of a node, as titles and abstracts are joined
READERS = {
    ".csv": lambda path: pd.read_csv(path, keep_default_na=False, na_values=[""]),
    ".tsv": lambda path: pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]),
    ".parquet": pd.read_parquet,
    ".jsonl": lambda path: pd.read_json(path, lines=True, dtype=False),
}


@dataclass(frozen=True)
class Columns:
    """Which columns of the two tables hold what."""

    id: str = "id"
    text: tuple[str, ...] = ("text",)
    label: str = "label"
    source: str = "src"
    target: str = "dst"


@dataclass
class ImportReport:
    out: Path
    num_nodes: int
    num_edges: int  # edge rows written (before the loader symmetrises and merges them)
    label_names: list[str]
    dropped_edges: int  # rows naming an id that is not in the node table
    empty_texts: int
    notes: list[str] = field(default_factory=list)


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown table format {path.suffix!r}; give a .csv, .tsv, .parquet or .jsonl file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return reader(path)
    except Exception as err:  # each reader raises its own kinds (parser, arrow, JSON, encoding errors)
        raise DataError(f"{path}: cannot be read as {path.suffix[1:]}: {str(err).splitlines()[0][:200]}") from None


def require_columns(table: pd.DataFrame, path: Path, names: list[str]) -> None:
    for name in names:
        if name not in table.columns:
            raise DataError(f"{path}: no column {name!r} (columns: {', '.join(map(str, table.columns))})")


def require_values(table: pd.DataFrame, path: Path, names: list[str]) -> None:
    """Refuse a missing value in these columns, naming its 1-based data row (header not counted)."""
    for name in names:
        missing = table[name].isna().to_numpy().nonzero()[0]
        if len(missing):
            raise DataError(f"{path}: row {int(missing[0]) + 1}, column {name!r}: no value")


def as_keys(values: pd.Series) -> pd.Series:
    """Ids as strings that compare equal across tables: 7, 7.0 (a float column) and "7" are one id."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    return values.astype(str)


def node_records(nodes: pd.DataFrame, path: Path, columns: Columns) -> tuple[list[dict], list[str], dict[str, int], int]:
    """nodes.jsonl's records, the class names, original id -> node id, and how many texts are empty."""
    require_columns(nodes, path, [columns.id, *columns.text, columns.label])
    require_values(nodes, path, [columns.id, columns.label])
    keys = as_keys(nodes[columns.id])
    repeated = keys.duplicated().to_numpy().nonzero()[0]
    if len(repeated):
        row = int(repeated[0])
        raise DataError(f"{path}: row {row + 1}, column {columns.id!r}: id {keys.iloc[row]!r} repeats an earlier row's")
    for name in columns.text:
        if nodes[name].isna().all() or (nodes[name].astype(str).str.strip() == "").all():
            raise DataError(f"{path}: column {name!r}: every text is empty")
    parts = [nodes[name].where(nodes[name].notna(), "").astype(str) for name in columns.text]
    texts = [TEXT_SEPARATOR.join(p for p in row if p) for row in zip(*parts)]
    labels = as_keys(nodes[columns.label])
    names = sorted(labels.unique(), key=lambda name: (not name.lstrip("-").isdigit(), int(name) if name.lstrip("-").isdigit() else 0, name))
    class_of = {name: index for index, name in enumerate(names)}
    records = [
        {"id": index, "orig_id": key, "label": class_of[label], "text": text}
        for index, (key, label, text) in enumerate(zip(keys, labels, texts))
    ]
    return records, names, {key: index for index, key in enumerate(keys)}, sum(1 for text in texts if not text)


def edge_rows(edges: pd.DataFrame, path: Path, columns: Columns, node_of: dict[str, int]) -> tuple[list[tuple[int, int]], int]:
    """(src, dst) node ids of the edge rows whose both ends are known, and how many were not."""
    require_columns(edges, path, [columns.source, columns.target])
    require_values(edges, path, [columns.source, columns.target])
    pairs = [(node_of.get(s), node_of.get(t)) for s, t in zip(as_keys(edges[columns.source]), as_keys(edges[columns.target]))]
    kept = [(s, t) for s, t in pairs if s is not None and t is not None]
    return kept, len(pairs) - len(kept)


def write_folder(folder: Path, records: list[dict], names: list[str], pairs: list[tuple[int, int]]) -> None:
    with open(folder / "nodes.jsonl", "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8", newline="\n")
    (folder / "edges.csv").write_text("src,dst\n" + "".join(f"{s},{t}\n" for s, t in pairs), encoding="utf-8", newline="\n")
    for name in ("nodes.jsonl", "labels.txt", "edges.csv"):
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())


def import_tables(nodes_path: Path, edges_path: Path, out: Path, columns: Columns = Columns(), force: bool = False) -> ImportReport:
    """Write the TAG folder `out` from a node table and an edge table (docs/data-format.md)."""
    out = Path(out)
    if out.exists() and not force:
        raise DataError(f"{out} already exists (pass --force to replace it)")
    if out.exists() and not (out / "nodes.jsonl").is_file():
        raise DataError(f"{out} exists and is not a TAG folder; refusing to replace it")
    records, names, node_of, empty = node_records(read_table(nodes_path), Path(nodes_path), columns)
    pairs, dropped = edge_rows(read_table(edges_path), Path(edges_path), columns, node_of)
    with staged_directory(out) as staging:
        write_folder(staging, records, names, pairs)
        tag = load_tag_folder(staging, name=out.name)  # never publish what the loader would refuse
    notes = [f"{count} {what}" for what, count in tag.notes.items() if count]
    return ImportReport(out, len(records), len(pairs), names, dropped, empty, notes)
