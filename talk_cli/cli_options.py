"""Command-line machinery: typer options generated from the settings dataclasses (their help
text and their one default), commands registered with those options, and the error policy."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import signal
import typing
from collections.abc import Callable
from contextlib import contextmanager
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional

import typer

from talk_cli import distributed
from talk_cli.console import stderr
from talk_cli.distill.loop import StopRequested
from talk_cli.errors import TalkError

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
            stderr.print(f"[bold red]error:[/] {err}")
            raise typer.Exit(USAGE_ERROR) from None
        except KeyboardInterrupt as err:
            stderr.print(f"interrupted: {err}" if str(err) else "interrupted (nothing was written)")
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
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        shown = defaults_note.get(f.name, defaults_note.get("*", "{}")).format(f.default)
        params.append(option(f.name, Optional[kind], None, flag_of(f), choices=f.metadata.get("choices"), help=f.metadata["help"], show_default=shown))
    return params


def command(*fixed: inspect.Parameter, generated: list[inspect.Parameter] = ()) -> Callable:
    """Register `function(**options)` as a command whose options are `fixed` + `generated`."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def quiet_unless_rank_0(**options: Any) -> None:
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

    def check() -> None:
        if distributed.any_rank(bool(asked)):  # under torchrun every rank stops at the same step
            raise StopRequested

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
