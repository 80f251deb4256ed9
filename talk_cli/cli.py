"""The `talk` command line: parse options, call `talk_cli.pipeline`, render the result.

Human-readable output goes to stderr; `--json` prints one JSON object on stdout. Every
`TalkError` becomes a one-line message and exit code 2. Options that set a field of a settings
dataclass are generated from it (its help text and its one default).
"""

from __future__ import annotations

import inspect
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

# Model hubs are never reached from the command line: models load from local paths (or the local
# Hugging Face cache). Set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import typer  # noqa: E402

from talk_cli.bundle.card import DEFAULT_LICENSE  # noqa: E402
from talk_cli.cli_options import (  # noqa: E402
    DATASET,
    EVAL_DEFAULTS,
    IMPORT_COLUMNS,
    app,
    command,
    emit_json,
    given,
    load_lm,
    option,
    reports_errors,
    settings_options,
    stop_at_step_boundary,
)
from talk_cli.console import progress_bar, quiet_transformers, render_summary, report_dataset, say  # noqa: E402
from talk_cli.data.columns import Columns  # noqa: E402
from talk_cli.distill.settings import DistillSettings  # noqa: E402
from talk_cli.encode.settings import DEFAULT_POOLING, POOLINGS, EncodeSettings  # noqa: E402
from talk_cli.errors import SettingsError, TalkError  # noqa: E402
from talk_cli.gnn.settings import PROTOCOLS, EvalSettings  # noqa: E402


def prepare(options: dict, model: str | None, pooling: str, encode: EncodeSettings, features_path=None, force=False):
    """Load the dataset named by the options, report it, and encode it (or reuse the cache)."""
    from talk_cli import pipeline
    from talk_cli.data import SplitSpec
    from talk_cli.data.split import parse_fractions
    from talk_cli.reports import encoded_line

    device, note = pipeline.start(options["device"], options["threads"])
    say(options["quiet"], *([f"note: {note}"] if note else []))
    spec = SplitSpec(parse_fractions(options["split_fractions"]), options["split_seed"], not options["ignore_split_file"])
    tag = pipeline.load_dataset(options["dataset"], options["data_root"], spec)
    report_dataset(tag, options["quiet"])
    lm = load_lm(model, pooling)
    with progress_bar(f"encoding {tag.name}", tag.num_nodes, options["quiet"]) as update:
        prepared = pipeline.prepare(tag, lm, encode, device, features_path, force, on_progress=lambda n: update(advance=n))
    say(options["quiet"], encoded_line(prepared))
    return prepared


MODEL = option("model", Optional[str], None, "--model", help="Local LM folder or Hugging Face id.", show_default="all-MiniLM-L6-v2")
POOLING = option(
    "pooling", str, DEFAULT_POOLING, "--pooling", choices=POOLINGS, help="How token states become one feature: their mean, or the first token's (cls)."
)
FORCE = option("force", bool, False, "--force", help="Replace an existing output.")


@command(
    *DATASET, MODEL, POOLING, FORCE,
    option("out", Optional[Path], None, "--out", help="Features file.", show_default="in the cache folder"),
    generated=settings_options(EncodeSettings, {"*": "{}"}),
)  # fmt: skip
def encode(**options) -> None:
    """Encode every node text with the LM into a reusable features cache."""
    from talk_cli import distributed

    settings = EncodeSettings(**{k: v for k, v in given(options, EncodeSettings).items() if v is not None})
    prepared = prepare(options, options["model"], options["pooling"], settings, options["out"], options["force"])
    if distributed.rank() == 0 and options["as_json"]:
        from talk_cli.reports import encode_payload

        emit_json(encode_payload(prepared))


@command(
    *DATASET, MODEL, FORCE,
    option("out", Optional[Path], None, "--out", "-o", help="Bundle directory to write (required unless --print-settings)."),
    option("recipe", Optional[str], None, "--recipe", help="Recipe file or shipped name; none for the defaults alone.", show_default="the dataset's shipped recipe, if any"),
    option("resume", bool, False, "--resume", help="Continue from the checkpoint beside --out."),
    option("print_settings", bool, False, "--print-settings", help="Print the effective settings (defaults < recipe < flags) and exit."),
    option("license", str, DEFAULT_LICENSE, "--license", help="Licence named in the bundle's dataset card (other: the source dataset's applies)."),
    generated=settings_options(DistillSettings, {"*": "{}, or the recipe's"}),
)  # fmt: skip
def distill(**options) -> None:
    """Distil a dataset into a synthetic-graph bundle with TaLK (or a baseline)."""
    from talk_cli import distributed, pipeline
    from talk_cli.bundle.bundle import check_target
    from talk_cli.distill import METHODS, TOKEN_PHASE
    from talk_cli.distill.loop import check_shardable
    from talk_cli.reports import distill_lines, distill_payload, settings_lines

    flags = given(options, DistillSettings)
    settings, recipe = pipeline.distill_settings(options["dataset"], options["recipe"], **flags)
    say(options["quiet"], *settings_lines(settings, recipe, options["dataset"], [name for name, value in flags.items() if value is not None]))
    if options["print_settings"]:
        emit_json(settings.as_dict())
        return
    if options["out"] is None:
        raise SettingsError("give --out, the bundle directory to write")
    out = options["out"]
    replacing = check_target(out, options["force"])  # before encoding, not after it
    check_shardable(settings)
    prepared = prepare(options, options["model"], settings.pooling, EncodeSettings(max_length=settings.max_length))
    if distributed.rank() != 0 and not METHODS[settings.method].learns:
        return  # the other ranks helped encode; rank 0 picks the coreset
    fields = "{task.fields[phase]}  loss {task.fields[loss]}  val {task.fields[val]}  best {task.fields[best]}"
    steps = pipeline.distill_steps(settings)
    with progress_bar("distilling", steps, options["quiet"], fields, phase="", loss="-", val="-", best="-") as update, stop_at_step_boundary() as stop:

        def on_progress(event) -> None:
            report = event.report
            shown = {"phase": report.phase, "loss": f"{report.loss:.4f}", "best": f"{report.best_val_accuracy:.3f}"}
            update(completed=event.done, **shown, **({"val": f"{report.val_accuracy:.3f}"} if report.val_accuracy is not None else {}))
            if report.phase == TOKEN_PHASE:  # the warm start runs to its end; a stop takes effect in the token loop
                stop()

        command_line = shlex.join(["talk", *sys.argv[1:]])
        bundle, outcome = pipeline.distill(prepared, settings, out, options["force"], options["resume"], on_progress, command_line, options["license"])
    if distributed.rank() != 0:
        return  # rank 0 wrote the bundle and reports
    say(options["quiet"], *distill_lines(settings, bundle, outcome, out, prepared.tag.name, replacing))
    if options["as_json"]:
        emit_json(distill_payload(prepared, settings, recipe, bundle, outcome, out))


@command(
    inspect.Parameter(
        "bundle_path", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
        annotation=Annotated[Optional[Path], typer.Argument(metavar="BUNDLE", help="A bundle directory.", show_default=False)],
    ),
    *DATASET,
    option("full", bool, False, "--full", help="Train on every real training node: the reference."),
    option("protocol", str, "gnn", "--protocol", choices=PROTOCOLS, help="gnn (LM frozen) or joint (LM fine-tuned with the GNN; slow)."),
    option("allow_mismatch", bool, False, "--allow-mismatch", help="Evaluate a bundle made from other data or another LM."),
    option("store", bool, False, "--write-back", help="Store the results in the bundle's manifest."),
    option("model", Optional[str], None, "--model", help="LM for the real features.", show_default="the bundle's"),
    option("max_length", Optional[int], None, "--max-length", help="Tokens per real text.", show_default="the bundle's, else what talk distill uses on the dataset"),
    option("pooling", Optional[str], None, "--pooling", choices=POOLINGS, help="How token states become one feature.", show_default=f"the bundle's, else {DEFAULT_POOLING}"),
    generated=settings_options(EvalSettings, EVAL_DEFAULTS),
)  # fmt: skip
def evaluate(**options) -> None:
    """Train a GNN on a bundle and test it on the real graph; or the full-data reference (--full).

    % of full compares with the cached --full reference of the same protocol and training settings
    (any number of runs); a joint result is also shown against the frozen-LM (gnn) reference.
    """
    from talk_cli import distributed, pipeline
    from talk_cli.bundle import load_bundle
    from talk_cli.evaluate import result_payload, training_defaults, write_back
    from talk_cli.reports import evaluate_lines

    protocol, full, path = options["protocol"], options["full"], options["bundle_path"]
    if (path is None) == (not full):
        raise SettingsError("give a BUNDLE to evaluate, or --full for the full-data reference (not both)")
    values = {k: v for k, v in given(options, EvalSettings).items() if v is not None}
    settings = EvalSettings(**{**training_defaults(protocol, full), **values})
    bundle = load_bundle(path) if path is not None else None
    model, pooling, encoding = pipeline.evaluation_encoding(options["dataset"], bundle, options["model"], options["max_length"], options["pooling"])
    prepared = prepare(options, model, pooling, encoding)
    if distributed.rank() != 0:
        return  # the other ranks helped encode; rank 0 evaluates
    with progress_bar(f"training {settings.architecture}, {settings.runs} runs", settings.runs * settings.epochs, options["quiet"]) as update:
        evaluation, problems = pipeline.evaluate(prepared, bundle, settings, protocol, options["allow_mismatch"], lambda n: update(advance=n))
    say(False, *(f"warning: {problem}" for problem in problems))  # even with --quiet
    payload = result_payload(evaluation, protocol, settings, prepared.tag, "full" if full else str(path), problems)
    if options["store"] and bundle is not None:
        write_back(bundle, path, payload)
    say(options["quiet"], *evaluate_lines(evaluation, payload, settings, protocol, payload["training_set"]))
    if options["as_json"]:
        emit_json(payload)


@command(
    inspect.Parameter(
        "nodes", inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[Path, typer.Argument(metavar="NODES", help="Node table: .csv, .tsv, .parquet or .jsonl.", show_default=False)],
    ),
    option("edges", Path, ..., "--edges", help="Edge table (any of the same formats), one edge per row."),
    option("out", Path, ..., "--out", "-o", help="TAG folder to write (docs/data-format.md)."),
    *IMPORT_COLUMNS,
    FORCE,
    option("quiet", bool, False, "--quiet", "-q", help="No messages on stderr."),
    option("as_json", bool, False, "--json", help="Print a machine-readable summary on stdout."),
)  # fmt: skip
def import_(**options) -> None:
    """Write a TAG folder from a node table and an edge table (CSV, TSV, Parquet, JSON Lines)."""
    from talk_cli.data.importer import import_tables
    from talk_cli.reports import import_lines, import_payload

    texts = tuple(options["text_column"] or Columns.text)
    columns = Columns(options["id_column"], texts, options["label_column"], options["source_column"], options["target_column"])
    report = import_tables(options["nodes"], options["edges"], options["out"], columns, options["force"])
    say(options["quiet"], *import_lines(report, options["nodes"]))
    if options["as_json"]:
        emit_json(import_payload(report))


@app.command()
@reports_errors
def inspect(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A bundle directory.", show_default=False)],
    verify: Annotated[bool, typer.Option("--verify", help="Report each integrity check; exit 2 on any problem.")] = False,
    decode: Annotated[bool, typer.Option("--decode", help="Show the vocabulary tokens nearest to each synthetic sequence.")] = False,
    privacy: Annotated[
        bool, typer.Option("--privacy", help="Measure how much real text each synthetic node reveals: decoded, compared with every text of the dataset.")
    ] = False,
    model: Annotated[
        Optional[str], typer.Option("--model", help="LM for --decode, --privacy and the real features of --plot.", show_default="the bundle's")
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help="Draw the synthetic nodes among the real ones, the distillation curve, the structure and the class balance to a PNG."),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option("--dataset", "-d", help="Where --plot and --privacy find the real nodes.", show_default="the bundle's dataset under the data root"),
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Folder of datasets.", show_default="$TALK_DATA_ROOT, else ../shared/datasets")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    card: Annotated[bool, typer.Option("--card", help="Print the bundle's dataset card (README.md) instead of the summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr (the summary still goes to stdout).")] = False,
) -> None:
    """Summarise, verify, decode, measure the privacy of, or plot a bundle. The summary goes to stdout."""
    from talk_cli.bundle import load_bundle
    from talk_cli.bundle.bundle import read_card
    from talk_cli.bundle.decode import decoded_rows
    from talk_cli.bundle.spec import CHECKS
    from talk_cli.bundle.summary import summarize

    bundle = load_bundle(bundle_path)  # verifies everything; a damaged bundle stops here with exit 2
    if card:
        sys.stdout.write(read_card(bundle_path))
        return
    summary = summarize(bundle)
    if verify:
        summary["verified"] = list(CHECKS)
    if decode:
        lm = load_lm(model or bundle.lm.name, bundle.lm.pooling)
        if lm.identity.weights_sha256 != bundle.lm.weights_sha256:
            say(quiet, f"note: the weights of {lm.identity.name!r} differ from those the bundle was made with; tokens are approximate")
        summary["decoded"] = decoded_rows(bundle, lm)
    if privacy:
        from talk_cli import pipeline

        quiet_transformers()
        exposure, notes = pipeline.text_exposure(bundle, data_root, dataset, model)
        say(quiet, *(f"note: {note}" for note in notes))
        summary["privacy"] = exposure.as_dict()
    if plot is not None:
        from talk_cli import pipeline
        from talk_cli.bundle.plot import plot_bundle

        quiet_transformers()  # real_graph loads the LM
        try:
            with progress_bar(f"encoding {dataset or bundle.dataset.name}", bundle.dataset.num_nodes, quiet) as update:
                real = pipeline.real_graph(bundle, data_root, dataset=dataset, model=model, on_progress=lambda n: update(advance=n))
        except TalkError as err:
            real = None
            say(quiet, f"note: the plot shows the synthetic nodes only; the real nodes are not drawn: {err}")
        summary["plot"] = str(plot_bundle(bundle, plot, real))
    emit_json(summary) if as_json else render_summary(summary)


def main() -> None:
    app()
