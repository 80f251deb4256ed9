"""The `talk` command line: parse options, call `talk_cli.pipeline`, render the result.

Human-readable output goes to stderr; `--json` prints one JSON object on stdout. Every
`TalkError` becomes a one-line message and exit code 2. Options that set a field of a settings
dataclass are generated from it (its help text and its one default).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

# Model hubs are never reached from the command line: models load from local paths (or the local
# Hugging Face cache). Set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import typer  # noqa: E402

from talk_cli import __version__, distributed  # noqa: E402
from talk_cli.cli_options import app, command, flag_of, given, option, reports_errors, settings_options, stop_at_step_boundary  # noqa: E402
from talk_cli.data.importer import Columns  # noqa: E402
from talk_cli.console import progress_bar, render_summary, report_dataset, stderr  # noqa: E402
from talk_cli.bundle.card import DEFAULT_LICENSE  # noqa: E402
from talk_cli.distill.settings import DistillSettings, unread_settings  # noqa: E402
from talk_cli.encode.encoder import EncodeSettings  # noqa: E402
from talk_cli.encode.lm import DEFAULT_POOLING, POOLINGS  # noqa: E402
from talk_cli.errors import SettingsError  # noqa: E402
from talk_cli.gnn.train import PROTOCOLS, TRAINING_DEFAULTS, EvalSettings  # noqa: E402
from talk_cli.device import DEVICES  # noqa: E402


def emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def quiet_transformers() -> None:
    """Our own progress bar and messages replace transformers' loading bars and warnings."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


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


DATASET = [
    option("dataset", str, ..., "--dataset", "-d", help="'demo', a dataset name under the data root, or a folder path."),
    option("data_root", Optional[Path], None, "--data-root", help="Folder of datasets.", show_default="$TALK_DATA_ROOT, else ../shared/datasets"),
    option("split_seed", int, 0, "--split-seed", help="Seed of the random split (datasets without split.json)."),
    option("split_fractions", str, "0.6,0.2,0.2", "--split-fractions", help="Train,val,test fractions of the random split."),
    option("ignore_split_file", bool, False, "--ignore-split-file", help="Use the random split even when split.json exists."),
    option("device", str, "auto", "--device", choices=DEVICES, help="Where to compute: auto picks a GPU when there is one."),
    option("threads", Optional[int], None, "--threads", help="CPU threads for torch.", show_default="torch's choice: the cores available"),
    option("quiet", bool, False, "--quiet", "-q", help="No progress bar or messages on stderr."),
    option("as_json", bool, False, "--json", help="Print a machine-readable summary on stdout."),
]


def prepare(options: dict, model: str | None, pooling: str, encode: EncodeSettings, features_path=None, force=False):
    """Load the dataset named by the options, report it, and encode it (or reuse the cache)."""
    import torch

    from talk_cli import pipeline
    from talk_cli.data import SplitSpec
    from talk_cli.data.split import parse_fractions
    from talk_cli.device import processes_on_this_machine, resolve_device

    device = resolve_device(options["device"])
    if device.type == "cpu" and options["device"] == "auto" and torch.cuda.is_available() and not options["quiet"] and distributed.rank() == 0:
        stderr.print(
            f"note: --device auto runs on the CPU: torchrun started {processes_on_this_machine()} processes on this machine, "
            f"which has {torch.cuda.device_count()} GPU(s), and each process needs its own"
        )
    distributed.start(device)
    if options["threads"] is not None:
        if options["threads"] < 1:
            raise SettingsError(f"--threads must be at least 1, got {options['threads']}")
        torch.set_num_threads(options["threads"])
    spec = SplitSpec(parse_fractions(options["split_fractions"]), options["split_seed"], not options["ignore_split_file"])
    tag = pipeline.load_dataset(options["dataset"], options["data_root"], spec)
    report_dataset(tag, options["quiet"])
    lm = load_lm(model, pooling)
    with progress_bar(f"encoding {tag.name}", tag.num_nodes, options["quiet"]) as update:
        prepared = pipeline.prepare(tag, lm, encode, device, features_path, force, on_progress=lambda n: update(advance=n))
    if not options["quiet"]:
        encoded = prepared.encoded
        how = "reused the cache" if encoded.reused else f"encoded {tag.num_nodes} texts ({tag.num_nodes / max(encoded.seconds, 1e-9):.1f} texts/s)"
        resumed = f", {encoded.resumed_chunks} chunk(s) resumed" if encoded.resumed_chunks else ""
        stderr.print(f"features {list(encoded.features.shape)}: {how} in {encoded.seconds:.1f} s{resumed}: {encoded.path}")
    return prepared


MODEL = option("model", Optional[str], None, "--model", help="Local LM folder or Hugging Face id.", show_default="all-MiniLM-L6-v2")
POOLING = option("pooling", str, DEFAULT_POOLING, "--pooling", choices=POOLINGS, help="How token states become one feature: their mean, or the first token's (cls).")
FORCE = option("force", bool, False, "--force", help="Replace an existing output.")


@command(
    *DATASET, MODEL, POOLING, FORCE,
    option("out", Optional[Path], None, "--out", help="Features file.", show_default="in the cache folder"),
    generated=settings_options(EncodeSettings, {"*": "{}"}),
)  # fmt: skip
def encode(**options) -> None:
    """Encode every node text with the LM into a reusable features cache."""
    settings = EncodeSettings(**{k: v for k, v in given(options, EncodeSettings).items() if v is not None})
    prepared = prepare(options, options["model"], options["pooling"], settings, options["out"], options["force"])
    if distributed.rank() != 0:
        return
    result = prepared.encoded
    if options["as_json"]:
        rate = 0.0 if result.reused else prepared.tag.num_nodes / max(result.seconds, 1e-9)
        emit_json(
            {
                "path": str(result.path), "shape": list(result.features.shape), "reused": result.reused,
                "seconds": round(result.seconds, 3), "texts_per_second": round(rate, 2),
                "tokens_per_second": round(result.num_tokens / max(result.seconds, 1e-9), 1),
                "resumed_chunks": result.resumed_chunks,
                "dataset": {"name": prepared.tag.name, "content_hash": prepared.tag.content_hash, **prepared.tag.notes},
                "model": prepared.lm.identity.as_dict(), "device": str(prepared.device),
            }
        )  # fmt: skip


def distill_settings(options: dict):
    from talk_cli import pipeline
    flags = given(options, DistillSettings)
    settings, recipe = pipeline.distill_settings(options["dataset"], options["recipe"], **flags)
    if not options["quiet"]:
        stderr.print(f"recipe: {recipe}" if recipe else f"no recipe for {Path(options['dataset']).name!r}: using the defaults")
        unread = unread_settings(settings.method, [name for name, value in flags.items() if value is not None])
        if unread:
            fields = {f.name: f for f in dataclasses.fields(DistillSettings)}
            ignored = ", ".join(flag_of(fields[name]) for name in unread)
            stderr.print(f"note: {settings.method} picks real training nodes in one go and runs no loop, so it ignores {ignored}")
    return settings, recipe


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
    from talk_cli import pipeline
    from talk_cli.bundle.bundle import check_target
    from talk_cli.distill import METHODS, TOKEN_PHASE, WARM_START_PHASES
    from talk_cli.distill.loop import check_shardable

    settings, recipe = distill_settings(options)
    if options["print_settings"]:
        emit_json(settings.as_dict())
        return
    if options["out"] is None:
        raise SettingsError("give --out, the bundle directory to write")
    out = options["out"]
    check_target(out, options["force"])  # before encoding, not after it
    check_shardable(settings)
    prepared = prepare(options, options["model"], settings.pooling, EncodeSettings(max_length=settings.max_length))
    learned = METHODS[settings.method].learns
    if distributed.rank() != 0 and not learned:
        return  # the other ranks helped encode; rank 0 picks the coreset
    # One bar over the whole run: the warm start's free-feature loop and inversion, then the token loop.
    free_steps, inversion_steps = (settings.steps, settings.invert_steps) if settings.warm_starts else (0, 0)
    offsets = dict(zip((*WARM_START_PHASES, TOKEN_PHASE), (0, free_steps, free_steps + inversion_steps)))
    fields = "{task.fields[phase]}  loss {task.fields[loss]}  val {task.fields[val]}  best {task.fields[best]}"
    total = free_steps + inversion_steps + settings.steps if learned else 0
    with progress_bar("distilling", total, options["quiet"], fields, phase="", loss="-", val="-", best="-") as update, stop_at_step_boundary() as stop:

        def on_step(report) -> None:
            values = {"phase": report.phase, "loss": f"{report.loss:.4f}", "best": f"{report.best_val_accuracy:.3f}"}
            update(completed=offsets[report.phase] + report.step, **values, **({"val": f"{report.val_accuracy:.3f}"} if report.val_accuracy is not None else {}))
            if report.phase == TOKEN_PHASE:  # the warm start runs to its end; a stop takes effect in the token loop
                stop()

        command_line = shlex.join(["talk", *sys.argv[1:]])
        bundle, outcome = pipeline.distill(prepared, settings, out, options["force"], options["resume"], on_step, command_line, options["license"])
    if distributed.rank() != 0:
        return  # rank 0 wrote the bundle and reports
    if not options["quiet"]:
        ratio = f"ratio {settings.ratio} of {bundle.dataset.num_train} training nodes" if settings.size is None else "size given"
        # With the feature-to-token warm start, step 0 is that fitted set, not the seed nodes: often the best.
        warm_start = " (the feature-to-token warm start)" if outcome.best_step == 0 and settings.warm_starts else ""
        selection = f"; best validation {settings.select.upper()} accuracy {outcome.best_val_accuracy:.4f} at step {outcome.best_step}{warm_start}" if learned else ""
        resumed = f"; resumed from step {outcome.resumed_from_step}" if outcome.resumed_from_step else ""
        resumed += f"; stopped at step {outcome.stopped_at} (--patience {settings.patience})" if learned and outcome.stopped_at is not None else ""
        stderr.print(f"{settings.method}: {prepared.tag.name} -> {bundle.num_synthetic} synthetic nodes ({ratio}) in {outcome.seconds:.1f} s{selection}{resumed}")
        if learned and outcome.best_step == 0 and settings.steps > 0 and not settings.warm_starts:
            stderr.print(
                "note: no step improved validation accuracy on the starting set (best at step 0), so the bundle holds the "
                "initial seed nodes; try a smaller --lr or more --steps, and compare with --method herding"
            )
        stderr.print(f"bundle: {out}")
    if options["as_json"]:
        emit_json(
            {
                "bundle": str(out), "num_synthetic": bundle.num_synthetic,
                "class_counts": dict(zip(bundle.dataset.label_names, bundle.labels.bincount(minlength=prepared.tag.num_classes).tolist())),
                "method": settings.method, "best_step": outcome.best_step if learned else None,
                "val_accuracy": outcome.best_val_accuracy if learned else None, "selected_by": settings.select if learned else None,
                "distill_seconds": round(outcome.seconds, 3), "encode_seconds": round(prepared.encoded.seconds, 3),
                "features_reused": prepared.encoded.reused, "resumed_from_step": outcome.resumed_from_step,
                "stopped_at": outcome.stopped_at if learned else None, "phase_seconds": outcome.phase_seconds,
                "recipe": str(recipe) if recipe else None, "settings": settings.as_dict(), "device": str(prepared.device),
            }
        )  # fmt: skip


def per_protocol(name: str) -> str:
    """How a training default differs by protocol, from the one table that sets it."""
    return ", ".join(
        f"{protocol}{' --full' if full else ''} {values[name]}" for (protocol, full), values in TRAINING_DEFAULTS.items() if name in values
    )


EVAL_DEFAULTS = {"*": "{}", **{name: per_protocol(name) for name in ("epochs", "eval_every", "lm_lr", "probe_epochs")}}


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
    from talk_cli import pipeline
    from talk_cli.bundle import load_bundle
    from talk_cli.evaluate import result_payload, training_defaults, write_back

    protocol, full, path = options["protocol"], options["full"], options["bundle_path"]
    if (path is None) == (not full):
        raise SettingsError("give a BUNDLE to evaluate, or --full for the full-data reference (not both)")
    values = {k: v for k, v in given(options, EvalSettings).items() if v is not None}
    settings = EvalSettings(**{**training_defaults(protocol, full), **values})
    bundle = load_bundle(path) if path is not None else None
    # A reference is encoded as `talk distill` encodes the dataset (its recipe may shorten the texts),
    # so that the bundles distilled from it find the reference in the cache.
    length = options["max_length"] or (bundle.lm.max_length if bundle else pipeline.distill_settings(options["dataset"])[0].max_length)
    pooling = options["pooling"] or (bundle.lm.pooling if bundle else DEFAULT_POOLING)
    prepared = prepare(options, options["model"] or (bundle.lm.name if bundle else None), pooling, EncodeSettings(max_length=length))
    if distributed.rank() != 0:
        return  # the other ranks helped encode; rank 0 evaluates
    with progress_bar(f"training {settings.architecture}, {settings.runs} runs", settings.runs * settings.epochs, options["quiet"]) as update:
        evaluation, problems = pipeline.evaluate(prepared, bundle, settings, protocol, options["allow_mismatch"], lambda n: update(advance=n))
    for problem in problems:
        stderr.print(f"warning: {problem}")
    payload = result_payload(evaluation, protocol, settings, prepared.tag, "full" if full else str(path), problems)
    if options["store"] and bundle is not None:
        write_back(bundle, path, payload)
    if not options["quiet"]:
        result, reference = evaluation.result, evaluation.reference
        stderr.print(
            f"{'full training set' if full else path}: test accuracy {100 * result['test_accuracy_mean']:.2f} ± {100 * result['test_accuracy_std']:.2f}%, "
            f"macro-F1 {100 * result['test_macro_f1_mean']:.2f} ± {100 * result['test_macro_f1_std']:.2f}% over {result['runs']} runs "
            f"({settings.architecture}, {result['train_seconds_mean']:.1f} s per run){' (cached reference)' if full and evaluation.reference_cached else ''}"
        )
        if protocol == "joint" and "best_epochs" in result:  # a reference cached before it was recorded has none
            chosen = ", ".join(map(str, result["best_epochs"]))
            stderr.print(f"selected epochs: {chosen} (0: the GNN probed on the pretrained LM, before any fine-tuning)")
        if protocol == "joint" and "probe_val_mean" in result:
            stderr.print(
                f"validation accuracy: {100 * result['probe_val_mean']:.2f}% probed, "
                f"{100 * result['fine_tuned_val_mean']:.2f}% at the best fine-tuned epoch (means over runs)"
            )
        kind = "joint (LM + GNN) " if protocol == "joint" else ""
        if payload["percent_of_full"] is not None:
            stderr.print(f"{payload['percent_of_full']:.1f}% of the {kind}full-data reference ({100 * reference['test_accuracy_mean']:.2f}%, {reference['runs']} runs, cached)")
        elif not full:
            stderr.print(
                f"no cached {kind}full-data reference with these settings: run `talk evaluate --full{' --protocol joint' if protocol == 'joint' else ''}` "
                "with the same --dataset and model options to get % of full"
            )
        if payload.get("percent_of_frozen_full") is not None:
            stderr.print(f"{payload['percent_of_frozen_full']:.1f}% of the frozen-LM (gnn) full-data reference ({100 * payload['frozen_full_test_accuracy_mean']:.2f}%)")
    if options["as_json"]:
        emit_json(payload)


@command(
    inspect.Parameter(
        "nodes", inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[Path, typer.Argument(metavar="NODES", help="Node table: .csv, .tsv, .parquet or .jsonl.", show_default=False)],
    ),
    option("edges", Path, ..., "--edges", help="Edge table (any of the same formats), one edge per row."),
    option("out", Path, ..., "--out", "-o", help="TAG folder to write (docs/data-format.md)."),
    option("id_column", str, Columns.id, "--id-column", help="Node table: the node ids (strings or integers)."),
    option("text_column", Optional[list[str]], None, "--text-column", help="Node table: a text column; repeat it to join several, in order, one per line.", show_default=Columns.text[0]),
    option("label_column", str, Columns.label, "--label-column", help="Node table: the class of each node (names or integers)."),
    option("source_column", str, Columns.source, "--source-column", help="Edge table: the id of one end."),
    option("target_column", str, Columns.target, "--target-column", help="Edge table: the id of the other end."),
    FORCE,
    option("quiet", bool, False, "--quiet", "-q", help="No messages on stderr."),
    option("as_json", bool, False, "--json", help="Print a machine-readable summary on stdout."),
)  # fmt: skip
def import_(**options) -> None:
    """Write a TAG folder from a node table and an edge table (CSV, TSV, Parquet, JSON Lines)."""
    from talk_cli.data.importer import import_tables

    columns = Columns(
        options["id_column"], tuple(options["text_column"] or Columns.text), options["label_column"], options["source_column"], options["target_column"]
    )
    report = import_tables(options["nodes"], options["edges"], options["out"], columns, options["force"])
    if not options["quiet"]:
        stderr.print(
            f"{report.out}: {report.num_nodes} nodes, {len(report.label_names)} classes ({', '.join(report.label_names[:8])}"
            f"{', ...' if len(report.label_names) > 8 else ''}), {report.num_edges} edge rows"
        )
        if report.dropped_edges:
            stderr.print(f"note: dropped {report.dropped_edges} edge row(s) naming an id that is not in {options['nodes']}")
        if report.empty_texts:
            stderr.print(f"note: {report.empty_texts} node(s) have no text")
        for note in report.notes:
            stderr.print(f"note: {note} (on loading)")
    if options["as_json"]:
        emit_json({**dataclasses.asdict(report), "out": str(report.out)})


@app.command()
@reports_errors
def inspect(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A bundle directory.", show_default=False)],
    verify: Annotated[bool, typer.Option("--verify", help="Report each integrity check; exit 2 on any problem.")] = False,
    decode: Annotated[bool, typer.Option("--decode", help="Show the vocabulary tokens nearest to each synthetic sequence.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="LM for --decode and the real features of --plot.", show_default="the bundle's")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw the synthetic nodes among the real ones, the distillation curve, the structure and the class balance to a PNG.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Where --plot finds the real nodes.", show_default="the bundle's dataset under the data root")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of datasets.", show_default="$TALK_DATA_ROOT, else ../shared/datasets")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    card: Annotated[bool, typer.Option("--card", help="Print the bundle's dataset card (README.md) instead of the summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr (the summary still goes to stdout).")] = False,
) -> None:
    """Summarise, verify, decode or plot a bundle. The summary goes to stdout."""
    from talk_cli.bundle import load_bundle
    from talk_cli.bundle.decode import decoded_rows
    from talk_cli.bundle.spec import CHECKS
    from talk_cli.bundle.summary import summarize
    from talk_cli.errors import TalkError

    bundle = load_bundle(bundle_path)  # verifies everything; a damaged bundle stops here with exit 2
    if card:
        from talk_cli.bundle.bundle import read_manifest

        listed = read_manifest(bundle_path).get("card")  # checked by load_bundle when listed; a stray README.md is not a card
        if listed is None:
            raise TalkError(f"{bundle_path}: no dataset card (bundles of format 1.1 and older have none)")
        sys.stdout.write((bundle_path / listed["file"]).read_text(encoding="utf-8"))
        return
    summary = summarize(bundle)
    if verify:
        summary["verified"] = list(CHECKS)
    if decode:
        lm = load_lm(model or bundle.lm.name, bundle.lm.pooling)
        if lm.identity.weights_sha256 != bundle.lm.weights_sha256 and not quiet:
            stderr.print(f"note: the weights of {lm.identity.name!r} differ from those the bundle was made with; tokens are approximate")
        summary["decoded"] = decoded_rows(bundle, lm)
    if plot is not None:
        from talk_cli import pipeline
        from talk_cli.bundle.plot import plot_bundle

        quiet_transformers()  # real_graph loads the LM
        try:
            with progress_bar(f"encoding {dataset or bundle.dataset.name}", bundle.dataset.num_nodes, quiet) as update:
                real = pipeline.real_graph(bundle, data_root, dataset=dataset, model=model, on_progress=lambda n: update(advance=n))
        except TalkError as err:
            real = None
            if not quiet:
                stderr.print(f"note: the plot shows the synthetic nodes only; the real nodes are not drawn: {err}")
        summary["plot"] = str(plot_bundle(bundle, plot, real))
    emit_json(summary) if as_json else render_summary(summary)


def main() -> None:
    app()
