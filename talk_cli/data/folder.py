"""Reader for the TAG directory format (see docs/data-format.md).

A folder holds `nodes.jsonl`, `edges.csv`, `labels.txt` and optionally `split.json`.
Every problem is reported as a `DataError` naming the file and, where there is one,
the line, so that a user can fix their data without reading this code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from talk_cli.data.build import build_tag
from talk_cli.data.split import SplitSpec, masks_from_split_file
from talk_cli.data.tag import TAG
from talk_cli.errors import DataError

REQUIRED_FILES = ("nodes.jsonl", "edges.csv", "labels.txt")


BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SURROGATES = re.compile("[\ud800-\udfff]")


def read_text(path: Path) -> str:
    """The file as UTF-8, with a leading byte-order mark skipped (editors on Windows add one)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if data.startswith(UTF16_BOMS):
        raise DataError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    data = data.removeprefix(BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        column = len(data[line_start : err.start].decode("utf-8", errors="replace")) + 1
        raise DataError(f"{path} line {line}, column {column}: not valid UTF-8 (byte 0x{data[err.start]:02x}: {err.reason}); save the file as UTF-8") from None


def read_lines(path: Path) -> list[str]:
    r"""The file's lines as its format defines them: split at \n only, with one \r before it
    dropped (CRLF files). `str.splitlines` would also break at U+2028, U+2029, \x85, \x0b, \x0c
    and \x1c-\x1e, cutting a text that holds one in two; here they are ordinary characters."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    return [line.removesuffix("\r") for line in lines]


def json_error(path: Path, line_no: int, err: json.JSONDecodeError) -> DataError:
    """Name the line and the column an editor shows. json's messages that point at the position
    end in "at" ("Unterminated string starting at"); the column completes them."""
    message = err.msg.removesuffix(" at")
    return DataError(f"{path} line {line_no}, column {err.colno}: malformed JSON ({message})")


def read_label_names(path: Path) -> list[str]:
    names = read_lines(path)
    while names and not names[-1].strip():
        names.pop()  # tolerate trailing blank lines
    if not names:
        raise DataError(f"{path}: no class names; line i must name label id i")
    seen: dict[str, int] = {}
    for line_no, name in enumerate(names, start=1):
        if not name.strip():
            raise DataError(f"{path} line {line_no}: empty class name")
        if name in seen:
            raise DataError(f"{path} line {line_no}: class name {name!r} repeats line {seen[name]}")
        seen[name] = line_no
    return names


def read_nodes(path: Path, num_classes: int) -> tuple[list[str], torch.Tensor, int]:
    """Texts and labels in node-id order (ids must be exactly 0..n-1, each once), and how many
    texts had unpaired surrogates replaced."""
    by_id: dict[int, tuple[int, str, int]] = {}  # id -> (label, text, line)
    replaced = 0
    for line_no, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            # strict=False: a raw control character inside a string (a tab, \x0b, \x1c ...) is
            # kept rather than refused; JSON asks writers to escape them, and most do.
            record = json.loads(line, strict=False)
        except json.JSONDecodeError as err:
            raise json_error(path, line_no, err) from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {line_no}: expected a JSON object, got {type(record).__name__}")
        for key in ("id", "label", "text"):
            if key not in record:
                raise DataError(f"{path} line {line_no}: missing '{key}'")
        node, label, text = record["id"], record["label"], record["text"]
        if not isinstance(node, int) or isinstance(node, bool) or node < 0:
            raise DataError(f"{path} line {line_no}: 'id' must be a non-negative integer, got {node!r}")
        if not isinstance(label, int) or isinstance(label, bool):
            raise DataError(f"{path} line {line_no}: 'label' must be an integer, got {label!r}")
        if not 0 <= label < num_classes:
            raise DataError(f"{path} line {line_no}: label {label} is out of range; labels.txt names {num_classes} classes (0..{num_classes - 1})")
        if not isinstance(text, str):
            raise DataError(f"{path} line {line_no}: 'text' must be a string, got {type(text).__name__}")
        if node in by_id:
            raise DataError(f"{path} line {line_no}: id {node} repeats line {by_id[node][2]}")
        # A "\udc80" escape with no partner decodes to a lone surrogate, which no UTF-8 text
        # and no tokenizer can hold: it becomes U+FFFD, as a UTF-8 decoder would make it.
        text, count = SURROGATES.subn("\ufffd", text)
        replaced += count > 0
        by_id[node] = (label, text, line_no)
    if not by_id:
        raise DataError(f"{path}: no nodes")
    num_nodes = len(by_id)
    if max(by_id) != num_nodes - 1:
        missing = sorted(set(range(num_nodes)) - set(by_id))
        raise DataError(f"{path}: node ids must be 0..n-1 with none missing; {num_nodes} nodes but id {max(by_id)} given and id(s) {missing[:5]} missing")
    labels = torch.tensor([by_id[i][0] for i in range(num_nodes)], dtype=torch.int64)
    return [by_id[i][1] for i in range(num_nodes)], labels, replaced


def read_edges(path: Path, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    lines = read_lines(path)
    if not lines or lines[0].strip().replace(" ", "") != "src,dst":
        raise DataError(f"{path} line 1: expected the header 'src,dst'")
    src, dst = [], []
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            u, v = int(parts[0]), int(parts[1])
        except ValueError:
            raise DataError(f"{path} line {line_no}: expected two integer node ids 'src,dst', got {line!r}") from None
        for node in (u, v):
            if not 0 <= node < num_nodes:
                raise DataError(f"{path} line {line_no}: node {node} is not a node id (ids run from 0 to {num_nodes - 1})")
        src.append(u)
        dst.append(v)
    return torch.tensor(src, dtype=torch.int64), torch.tensor(dst, dtype=torch.int64)


def load_tag_folder(folder: Path, split: SplitSpec = SplitSpec(), name: str | None = None) -> TAG:
    """Load and validate a TAG from the directory format."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory")
    for required in REQUIRED_FILES:
        if not (folder / required).is_file():
            raise DataError(f"{folder}: missing required file {required} (a TAG folder holds {', '.join(REQUIRED_FILES)})")
    label_names = read_label_names(folder / "labels.txt")
    texts, labels, surrogates_replaced = read_nodes(folder / "nodes.jsonl", len(label_names))
    src, dst = read_edges(folder / "edges.csv", len(texts))

    split_file = folder / "split.json"
    split_masks = None
    if split.use_dataset_split and split_file.is_file():
        try:
            parsed = json.loads(read_text(split_file))
        except json.JSONDecodeError as err:
            raise json_error(split_file, err.lineno, err) from None
        split_masks = masks_from_split_file(parsed, len(texts), str(split_file)), "split.json"
    return build_tag(name or folder.name, texts, labels, label_names, src, dst, split, split_masks, where=str(folder), surrogates_replaced=surrogates_replaced)
