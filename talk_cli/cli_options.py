"""Command-line machinery: typer options generated from the settings dataclasses (their help
text and their one default), commands registered with those options, and the error policy."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import signal
import sys
import typing
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from talk_cli import __version__
from talk_cli.console import error_line, printable, quiet_transformers, stderr
from talk_cli.data.columns import Columns
from talk_cli.device import DEVICES
from talk_cli.encode.settings import DEFAULT_POOLING
from talk_cli.errors import TalkError
from talk_cli.gnn.settings import TRAINING_DEFAULTS

app = typer.Typer(
    name="talk",
    help="Distil a text-attributed graph into a tiny synthetic graph with TaLK.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: options that take one of a few values list them (`<gnn|joint>`), flags show no type.
    rich_markup_mode=None,
    context_settings={"max_content_width": 200},  # as wide as the terminal, up to 200 columns
)
USAGE_ERROR = 2


def reports_errors(command: Callable) -> Callable:
    """Turn user errors into a message and exit code 2, and Ctrl-C into exit code 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TalkError as err:
            stderr.print(error_line(str(err)))
            raise typer.Exit(USAGE_ERROR) from None
        except KeyboardInterrupt as err:
            stderr.print(printable(f"interrupted: {err}") if str(err) else "interrupted (nothing was written)")
            raise typer.Exit(130) from None

    return wrapper


def option(name: str, annotation: Any, default: Any, *decls: str, choices: Sequence[str] | None = None, **info: Any) -> inspect.Parameter:
    """A keyword option; with `choices`, typer lists them in --help and refuses any other value (exit 2)."""
    if choices:
        annotation = Optional[Literal[tuple(choices)]] if default is None else Literal[tuple(choices)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, typer.Option(*decls, **info)])


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a settings field: the one it declares, else --its-name."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def settings_options(cls: type, defaults_note: dict[str, str]) -> list[inspect.Parameter]:
    """One option per field of a settings dataclass; None means 'not given' (recipes may fill it)."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue  # a recipe key only
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        shown = defaults_note.get(f.name, defaults_note.get("*", "{}")).format(f.default)
        params.append(option(f.name, Optional[kind], None, flag_of(f), choices=f.metadata.get("choices"), help=f.metadata["help"], show_default=shown))
    return params


def command(*fixed: inspect.Parameter, generated: list[inspect.Parameter] = ()) -> Callable:
    """Register `function(**options)` as a command whose options are `fixed` + `generated`."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def quiet_unless_rank_0(**options: Any) -> None:
            from talk_cli import distributed

            if "quiet" in options and distributed.rank() != 0:
                options["quiet"] = True  # under torchrun, rank 0 speaks for all
            return function(**options)

        quiet_unless_rank_0.__signature__ = inspect.Signature([*fixed, *generated])
        return app.command(name=function.__name__.rstrip("_"))(reports_errors(quiet_unless_rank_0))

    return register


def given(options: dict[str, Any], cls: type) -> dict[str, Any]:
    """The options that set a field of `cls`, as given (None: not given)."""
    return {f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options}


@contextmanager
def stop_at_step_boundary():
    """The first Ctrl-C asks the run to stop after the current step, with a checkpoint; a second
    one stops at once. Yields the check that `on_step` calls."""
    asked = []

    def ask(signum, frame) -> None:
        asked.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stderr.print("stopping after this step, with a checkpoint (Ctrl-C again: stop at once, without one)")

    from talk_cli import distributed
    from talk_cli.distill.loop import StopRequested

    def check() -> None:
        if distributed.any_rank(bool(asked)):  # under torchrun every rank stops at the same step
            raise StopRequested

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


# The options of every command that reads a dataset.
DATASET = [
    option("dataset", str, ..., "--dataset", "-d", help="'demo', a dataset name under the data root, or a folder path."),
    option("data_root", Optional[Path], None, "--data-root", help="Folder of datasets.", show_default="$TALK_DATA_ROOT, else ../shared/datasets"),
    option("split_seed", int, 0, "--split-seed", help="Seed of the random split (datasets without split.json)."),
    option("split_fractions", str, "0.6,0.2,0.2", "--split-fractions", help="Train,val,test fractions of the random split."),
    option("ignore_split_file", bool, False, "--ignore-split-file", help="Use the random split even when split.json exists."),
    option("device", str, "auto", "--device", choices=DEVICES, help="Where to compute: auto picks a GPU when there is one."),
    option(
        "threads",
        Optional[int],
        None,
        "--threads",
        help="At most this many CPU threads; fewer while other processes hold cores (re-read at each phase).",
        show_default="every usable core",
    ),
    option("quiet", bool, False, "--quiet", "-q", help="No progress bar or messages on stderr."),
    option("as_json", bool, False, "--json", help="Print a machine-readable summary on stdout."),
]


def per_protocol(name: str) -> str:
    """How a training default differs by protocol, from the one table that sets it."""
    return ", ".join(f"{protocol}{' --full' if full else ''} {values[name]}" for (protocol, full), values in TRAINING_DEFAULTS.items() if name in values)


# What `talk evaluate --help` shows as each generated option's default.
EVAL_DEFAULTS = {"*": "{}", **{name: per_protocol(name) for name in ("epochs", "eval_every", "lm_lr", "probe_epochs")}}


def emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def load_lm(name: str | None, pooling: str = DEFAULT_POOLING):
    from talk_cli.encode import load_language_model

    quiet_transformers()
    return load_language_model(name, pooling)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"talk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Distil a text-attributed graph into a tiny synthetic graph with TaLK."""


# The columns `talk import` reads.
IMPORT_COLUMNS = [
    option("id_column", str, Columns.id, "--id-column", help="Node table: the node ids (strings or integers)."),
    option(
        "text_column",
        Optional[list[str]],
        None,
        "--text-column",
        help="Node table: a text column; repeat it to join several, in order, one per line.",
        show_default=Columns.text[0],
    ),
    option("label_column", str, Columns.label, "--label-column", help="Node table: the class of each node (names or integers)."),
    option("source_column", str, Columns.source, "--source-column", help="Edge table: the id of one end."),
    option("target_column", str, Columns.target, "--target-column", help="Edge table: the id of the other end."),
]
