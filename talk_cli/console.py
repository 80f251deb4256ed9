"""How the CLI shows things: messages and progress bars on stderr, the inspect summary on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

# Every console prints text as it is: user strings (paths, column and class names, labels, decoded
# tokens) are never read as Rich markup, and style is given to our own words only, as `Text` styles.
stderr = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)
TIMES = (TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())


def printable(text: str) -> str:
    """`text` with control characters written as escapes (a newline as \\n, an ESC as \\x1b), so
    that a user string can neither break a one-line message nor drive the terminal."""
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1] for char in str(text))


def error_line(message: str) -> Text:
    return Text.assemble(("error:", "bold red"), " ", printable(message))


DATASET_NOTES = {
    "empty_texts": "node(s) with empty text (encoded as empty strings)",
    "self_loops_dropped": "self-loop(s) dropped",
    "repeated_edges_merged": "reciprocal or repeated edge(s) merged",
    "classes_without_nodes": "class(es) without any node",
    "texts_with_unpaired_surrogates": "text(s) with an unpaired surrogate escape, replaced by U+FFFD",
}


@contextmanager
def progress_bar(description: str, total: int, quiet: bool, fields: str = "", **initial: str) -> Iterator[Callable[..., None]]:
    """A Rich progress bar on stderr, silent with --quiet or when stderr is not a terminal.
    Yields `update(advance=0, completed=None, **fields)`; `fields` is a template of extra text
    whose values start as `initial`. The bar appears at the first update, so work that turns out
    to be cached shows none."""
    if quiet or not stderr.is_terminal or total == 0:
        yield lambda *args, **kwargs: None
        return
    extra = (TextColumn(fields, markup=False),) if fields else ()
    bar = Progress(TextColumn(printable(description), markup=False), BarColumn(), MofNCompleteColumn(), *extra, *TIMES, console=stderr, transient=True)
    task = bar.add_task(description, total=total, **initial)

    def update(advance=0, completed=None, **values) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, advance=advance, completed=completed, **values)

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


def say(quiet: bool, *lines: str) -> None:
    """Print each line on stderr, unless quiet."""
    for line in () if quiet else lines:
        stderr.print(printable(line))


def report_dataset(tag, quiet: bool) -> None:
    if quiet:
        return
    stderr.print(
        f"dataset {tag.name}: {tag.num_nodes} nodes, {tag.num_edges} undirected edges, {tag.num_classes} classes, "
        f"split {tag.split_description} ({int(tag.train_mask.sum())}/{int(tag.val_mask.sum())}/{int(tag.test_mask.sum())})"
    )
    for key, text in DATASET_NOTES.items():
        if tag.notes.get(key):
            stderr.print(printable(f"  note: {tag.notes[key]} {text}"))


def render_summary(summary: dict) -> None:
    out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)

    def section(title: str, rows: dict) -> None:
        table = Table(title=Text(printable(title)), show_header=False, title_justify="left", title_style="bold")
        table.add_column(style="cyan")
        table.add_column(overflow="fold")
        for key, value in rows.items():
            table.add_row(Text(printable(key)), Text(printable(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))))
        out.print(table)

    out.print(Text(printable(summary["real_text"]), style="bold"))
    synthetic = dict(summary["synthetic"])
    class_counts = synthetic.pop("class_counts")
    section(f"bundle (format {summary['format_version']}, talk_cli {summary['tool_version']}, {summary['created']})", synthetic)
    section("dataset", summary["dataset"])
    section("language model", summary["lm"])
    distillation = dict(summary["distillation"])
    section("distillation", {**{k: v for k, v in distillation.items() if k != "settings"}, **distillation["settings"]})
    section("synthetic nodes per class", class_counts)
    if summary["evaluation"]:
        section("evaluation", summary["evaluation"])
    if "verified" in summary:
        out.print(Text("verified:", style="bold green"))
        for check in summary["verified"]:
            out.print(f"  ok  {check}")
    if "decoded" in summary:
        table = Table(title="decoded synthetic texts (nearest vocabulary tokens)", title_justify="left", title_style="bold")
        for column in ("node", "class", "tokens"):
            table.add_column(column)
        for row in summary["decoded"]:
            table.add_row(str(row["node"]), Text(printable(row["class"])), Text(printable(row["tokens"])))
        out.print(table)
    if "privacy" in summary:
        table = Table(title="what each synthetic node reveals (decoded, compared with every real text)", title_justify="left", title_style="bold")
        for column in ("node", "class", "4-grams", "same tokens", "closest", "distance", "decoded"):
            table.add_column(column)
        for row in summary["privacy"]["nodes"]:
            table.add_row(
                str(row["node"]),
                Text(printable(row["label"])),
                f"{row['ngram_overlap']:.0%}",
                f"{row['position_match']:.0%}",
                str(row["closest_node"]),
                f"{row['token_distance']:.2f}",
                Text(printable(row["decoded"])),
            )
        out.print(table)
        out.print(Text(printable(summary["privacy"]["line"])))
    if "plot" in summary:
        out.print(Text(printable(f"plot: {summary['plot']}")))


def quiet_transformers() -> None:
    """Our own progress bar and messages replace transformers' loading bars and warnings."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
