"""The `talk` command line: parse options, call the core, render the result.

Human-readable output goes to stderr; `--json` prints one JSON object on stdout.
Every `TalkError` becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from talk_cli import __version__
from talk_cli.errors import TalkError

app = typer.Typer(
    name="talk",
    help="Distil a text-attributed graph into a tiny synthetic graph with TaLK.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)

USAGE_ERROR = 2


def fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}")
    return typer.Exit(USAGE_ERROR)


def reports_errors(command: Callable) -> Callable:
    """Turn user errors into a message and exit code 2, and Ctrl-C into exit code 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TalkError as err:
            raise fail(str(err)) from None
        except KeyboardInterrupt:
            stderr.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def progress_bar(description: str, total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr; silent with --quiet or when stderr is not a terminal."""
    if quiet or not stderr.is_terminal:
        yield lambda advance: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advance: progress.advance(task, advance)


def emit_json(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"talk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Distil a text-attributed graph into a tiny synthetic graph with TaLK."""


# Options shared by every command that reads a dataset.
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="'demo', a dataset name under the data root, or a folder path.")]
DataRootOpt = Annotated[
    Optional[Path], typer.Option("--data-root", help="Folder of datasets [default: $TALK_DATA_ROOT, else ../shared/datasets].")
]
SplitSeedOpt = Annotated[int, typer.Option("--split-seed", help="Seed of the random split (datasets without split.json).")]
SplitFractionsOpt = Annotated[str, typer.Option("--split-fractions", help="Train,val,test fractions of the random split.")]
NoSplitFileOpt = Annotated[bool, typer.Option("--ignore-split-file", help="Use the random split even when split.json exists.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages on stderr.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]


def load_dataset(dataset: str, data_root: Optional[Path], split_seed: int, split_fractions: str, ignore_split_file: bool):
    from talk_cli.data import SplitSpec, load_tag
    from talk_cli.data.split import parse_fractions

    spec = SplitSpec(fractions=parse_fractions(split_fractions), seed=split_seed, use_dataset_split=not ignore_split_file)
    return load_tag(dataset, data_root, spec)


def report_dataset(tag, quiet: bool) -> None:
    if quiet:
        return
    stderr.print(
        f"dataset {tag.name}: {tag.num_nodes} nodes, {tag.num_edges} undirected edges, {tag.num_classes} classes, "
        f"split {tag.split_description} ({int(tag.train_mask.sum())}/{int(tag.val_mask.sum())}/{int(tag.test_mask.sum())})"
    )
    notes = {
        "empty_texts": "node(s) with empty text (encoded as empty strings)",
        "self_loops_dropped": "self-loop(s) dropped",
        "repeated_edges_merged": "reciprocal or repeated edge(s) merged",
        "classes_without_nodes": "class(es) without any node",
        "texts_with_unpaired_surrogates": "text(s) with an unpaired surrogate escape, replaced by U+FFFD",
    }
    for key, text in notes.items():
        if tag.notes.get(key):
            stderr.print(f"  note: {tag.notes[key]} {text}")


@app.command()
@reports_errors
def encode(
    dataset: DatasetOpt,
    data_root: DataRootOpt = None,
    model: Annotated[
        Optional[str], typer.Option("--model", help="Local model folder or cached hub id [default: all-MiniLM-L6-v2].")
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per text (longer texts are truncated).")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 32,
    dtype: Annotated[str, typer.Option("--dtype", help="Compute dtype: float32, float16 or bfloat16.")] = "float32",
    device: DeviceOpt = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", help="Features file [default: in the cache folder].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Encode again even when a fresh cache exists.")] = False,
    split_seed: SplitSeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    ignore_split_file: NoSplitFileOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Encode every node text with the LM (mean pooling) into a reusable features cache."""
    from talk_cli.device import resolve_device
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    settings = EncodeSettings(max_length=max_length, batch_size=batch_size, dtype=dtype)
    target = resolve_device(device)
    tag = load_dataset(dataset, data_root, split_seed, split_fractions, ignore_split_file)
    report_dataset(tag, quiet)
    lm = load_language_model(model)
    with progress_bar(f"encoding {tag.name}", tag.num_nodes, quiet) as advance:
        result = encode_tag(tag, lm, settings, target, out=out, force=force, on_progress=advance)
    rate = 0.0 if result.reused else tag.num_nodes / max(result.seconds, 1e-9)
    if not quiet:
        if result.reused:
            stderr.print(f"reused fresh cache {list(result.features.shape)} in {result.seconds:.1f} s")
        else:
            resumed = f", {result.resumed_chunks} chunk(s) resumed" if result.resumed_chunks else ""
            stderr.print(
                f"encoded {tag.num_nodes} texts -> {list(result.features.shape)} in {result.seconds:.1f} s "
                f"({rate:.1f} texts/s{resumed})"
            )
        stderr.print(f"features: {result.path}")
    if as_json:
        emit_json(
            {
                "path": str(result.path),
                "shape": list(result.features.shape),
                "reused": result.reused,
                "seconds": round(result.seconds, 3),
                "texts_per_second": round(rate, 2),
                "tokens_per_second": round(result.num_tokens / max(result.seconds, 1e-9), 1),
                "resumed_chunks": result.resumed_chunks,
                "dataset": {"name": tag.name, "content_hash": tag.content_hash, **tag.notes},
                "model": lm.identity.as_dict(),
                "device": str(target),
            }
        )


@app.command()
@reports_errors
def distill(
    dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    ratio: Annotated[Optional[float], typer.Option("--ratio", help="Synthetic nodes as a fraction of the training nodes.")] = None,
    size: Annotated[Optional[int], typer.Option("--size", help="Number of synthetic nodes (overrides --ratio).")] = None,
    method: Annotated[
        Optional[str], typer.Option("--method", help="talk, or a baseline: kernel-features, random, herding, kcenter.")
    ] = None,
    recipe: Annotated[
        Optional[str], typer.Option("--recipe", help="Recipe file or shipped name [default: the dataset's shipped recipe, if any].")
    ] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Outer (KRR) steps.")] = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", help="Tokens per synthetic text.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate of the token embeddings.")] = None,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help="propagate-first or interleaved.")] = None,
    hops: Annotated[Optional[int], typer.Option("--hops", help="Aggregation steps K of the kernel.")] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", help="ReLU layers L of the kernel.")] = None,
    ridge: Annotated[Optional[float], typer.Option("--ridge", help="KRR ridge λ (relative to tr(K_SS)/n).")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="mse or ce.")] = None,
    structure: Annotated[Optional[str], typer.Option("--structure", help="identity, knn or learned.")] = None,
    soft_labels: Annotated[
        Optional[bool], typer.Option("--soft-labels/--hard-labels", help="Learn the synthetic labels.")
    ] = None,
    inner_every: Annotated[Optional[int], typer.Option("--inner-every", help="Inner LM+GNN loop every R steps (0: off).")] = None,
    krr_batch: Annotated[Optional[int], typer.Option("--krr-batch", help="Real training nodes per step (0: all).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Tokens per real text (features cache).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of initialisation and batches.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Local LM folder [default: all-MiniLM-L6-v2].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint beside --out.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle at --out.")] = False,
    data_root: DataRootOpt = None,
    split_seed: SplitSeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    ignore_split_file: NoSplitFileOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Distil a dataset into a synthetic-graph bundle with TaLK."""
    from talk_cli.bundle.bundle import check_target
    from talk_cli.device import resolve_device
    from talk_cli.distill import dataset_recipe, recipe_path, resolve_settings, run_distillation
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model

    overrides = dict(
        method=method, ratio=ratio, size=size, steps=steps, seq_len=seq_len, lr=lr, kernel=kernel, hops=hops, layers=layers,
        ridge=ridge, loss=loss, structure=structure, soft_labels=soft_labels, inner_every=inner_every,
        krr_batch=krr_batch, max_length=max_length, seed=seed,
    )  # fmt: skip
    recipe_file = recipe_path(recipe) if recipe is not None else dataset_recipe(dataset)
    settings = resolve_settings(recipe_file, overrides)
    target = resolve_device(device)
    check_target(out, force)  # before encoding, not after it
    tag = load_dataset(dataset, data_root, split_seed, split_fractions, ignore_split_file)
    report_dataset(tag, quiet)
    if not quiet and recipe_file is not None:
        stderr.print(f"recipe: {recipe_file}")
    lm = load_language_model(model)
    with progress_bar(f"encoding {tag.name}", tag.num_nodes, quiet) as advance:
        encoded = encode_tag(tag, lm, EncodeSettings(max_length=settings.max_length), target, on_progress=advance)
    if not quiet:
        stderr.print(f"features: {'reused cache' if encoded.reused else 'encoded'} in {encoded.seconds:.1f} s")
    with step_progress(settings.steps, quiet) as on_step:
        bundle, outcome = run_distillation(
            tag, lm, encoded.features, settings, target, out, force=force, resume=resume, on_step=on_step
        )
    talk_method = settings.method in ("talk", "kernel-features")
    if not quiet:
        ratio_text = f"ratio {settings.ratio} of {bundle.dataset.num_train} training nodes" if settings.size is None else "size given"
        selection = (
            f"; best validation KRR accuracy {outcome.best_val_accuracy:.4f} at step {outcome.best_step}" if talk_method else ""
        )
        stderr.print(
            f"{settings.method}: {tag.name} -> {bundle.num_synthetic} synthetic nodes ({ratio_text}) "
            f"in {outcome.seconds:.1f} s{selection}"
        )
        stderr.print(f"bundle: {out}")
    if as_json:
        emit_json(
            {
                "bundle": str(out),
                "num_synthetic": bundle.num_synthetic,
                "class_counts": bundle.labels.bincount(minlength=tag.num_classes).tolist(),
                "method": settings.method,
                "best_step": outcome.best_step if talk_method else None,
                "val_krr_accuracy": outcome.best_val_accuracy if talk_method else None,
                "distill_seconds": round(outcome.seconds, 3),
                "encode_seconds": round(encoded.seconds, 3),
                "features_reused": encoded.reused,
                "resumed_from_step": outcome.resumed_from_step,
                "recipe": str(recipe_file) if recipe_file else None,
                "settings": settings.as_dict(),
                "device": str(target),
            }
        )


@contextmanager
def step_progress(total: int, quiet: bool) -> Iterator[Callable]:
    """Progress of the outer loop with the current loss and validation accuracy."""
    if quiet or not stderr.is_terminal:
        yield lambda report: None
        return
    columns = (
        TextColumn("distilling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  best {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("distill", total=total, loss="-", val="-", best="-")

        def update(report) -> None:
            fields = {"loss": f"{report.loss:.4f}", "best": f"{report.best_val_accuracy:.3f}"}
            if report.val_accuracy is not None:
                fields["val"] = f"{report.val_accuracy:.3f}"
            progress.update(task, completed=report.step, **fields)

        yield update


@app.command()
@reports_errors
def evaluate(
    dataset: DatasetOpt,
    bundle_path: Annotated[Optional[Path], typer.Argument(metavar="[BUNDLE]", help="A bundle directory.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Train on every real training node: the reference.")] = False,
    protocol: Annotated[
        str, typer.Option("--protocol", help="gnn (LM frozen) or joint (LM fine-tuned with the GNN on the bundle; slow).")
    ] = "gnn",
    model_type: Annotated[str, typer.Option("--model-type", help="gcn, sgc, appnp, sage or mlp.")] = "gcn",
    runs: Annotated[int, typer.Option("--runs", help="Independent training runs (seeds seed..seed+runs-1).")] = 10,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs per run [default: gnn 200, joint 30].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first run.")] = 0,
    allow_mismatch: Annotated[
        bool, typer.Option("--allow-mismatch", help="Evaluate a bundle made from other data or another LM.")
    ] = False,
    store: Annotated[bool, typer.Option("--write-back", help="Store the results in the bundle's manifest.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="LM for the real features [default: the bundle's].")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Tokens per real text [default: the bundle's, else 128].")] = None,
    data_root: DataRootOpt = None,
    split_seed: SplitSeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    ignore_split_file: NoSplitFileOpt = False,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a GNN on a bundle and test it on the real graph; or the full-data reference (--full).

    % of full compares with the cached --full reference with the same settings (for --protocol joint:
    the gnn reference at 200 epochs).
    """
    from talk_cli.bundle import load_bundle
    from talk_cli.device import resolve_device
    from talk_cli.encode import EncodeSettings, encode_tag, load_language_model
    from talk_cli.encode.lm import DEFAULT_MODEL
    from talk_cli.evaluate import EvalSettings, check_match
    from talk_cli.evaluate.run import result_payload, run_evaluation, write_back

    if protocol not in ("gnn", "joint"):
        raise fail(f"--protocol must be gnn or joint, got {protocol!r}")
    if (bundle_path is None) == (not full):
        raise fail("give a BUNDLE to evaluate, or --full for the full-data reference (not both)")
    if full and protocol == "joint":
        raise fail("--full is the frozen-LM reference; use it with --protocol gnn")
    settings = EvalSettings(architecture=model_type, runs=runs, epochs=epochs or (200 if protocol == "gnn" else 30), seed=seed)
    target = resolve_device(device)
    bundle = load_bundle(bundle_path) if bundle_path is not None else None
    tag = load_dataset(dataset, data_root, split_seed, split_fractions, ignore_split_file)
    report_dataset(tag, quiet)
    lm_name = model or (bundle.lm.name if bundle else None)
    lm = load_language_model(None if lm_name in (None, DEFAULT_MODEL) else lm_name)
    length = max_length or (bundle.lm.max_length if bundle else 128)
    problems = check_match(bundle, tag, lm.identity, length, allow_mismatch) if bundle else []
    for problem in problems:
        stderr.print(f"warning: {problem}")
    with progress_bar(f"encoding {tag.name}", tag.num_nodes, quiet) as advance:
        features = encode_tag(tag, lm, EncodeSettings(max_length=length), target, on_progress=advance).features
    with progress_bar(f"training {model_type}, {runs} runs", runs * settings.epochs, quiet) as advance:
        result, reference = run_evaluation(tag, lm, features, bundle, settings, protocol, length, target, advance)
    payload = result_payload(result, reference, protocol, settings, tag, "full" if full else str(bundle_path), problems)
    if store and bundle is not None:
        write_back(bundle, bundle_path, payload)
    if not quiet:
        line = (
            f"{'full training set' if full else bundle_path}: test accuracy {100 * result['test_accuracy_mean']:.2f} "
            f"± {100 * result['test_accuracy_std']:.2f}%, macro-F1 {100 * result['test_macro_f1_mean']:.2f} "
            f"± {100 * result['test_macro_f1_std']:.2f}% over {result['runs']} runs ({model_type}, "
            f"{result['train_seconds_mean']:.1f} s per run)"
        )
        stderr.print(line)
        if payload["percent_of_full"] is not None:
            stderr.print(f"{payload['percent_of_full']:.1f}% of the full-data reference ({100 * reference['test_accuracy_mean']:.2f}%)")
        elif not full:
            stderr.print("no cached full-data reference with these settings: run `talk evaluate --full` to get % of full")
    if as_json:
        emit_json(payload)


@app.command()
@reports_errors
def inspect(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A bundle directory.")],
    verify: Annotated[bool, typer.Option("--verify", help="Report each integrity check; exit 2 on any problem.")] = False,
    decode: Annotated[bool, typer.Option("--decode", help="Show the vocabulary tokens nearest to each synthetic sequence.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="LM for --decode [default: the one in the manifest].")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw the graph, adjacency and class balance to a PNG.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise, verify, decode or plot a bundle. The summary goes to stdout."""
    from talk_cli.bundle import load_bundle
    from talk_cli.bundle.summary import summarize

    bundle = load_bundle(bundle_path)  # verifies everything; a damaged bundle stops here with exit 2
    summary = summarize(bundle)
    if verify:
        summary["verified"] = VERIFIED_CHECKS
    if decode:
        summary["decoded"] = decode_bundle(bundle, model)
    if plot is not None:
        from talk_cli.bundle.plot import plot_bundle

        summary["plot"] = str(plot_bundle(bundle, plot))
    if as_json:
        emit_json(summary)
    else:
        render_summary(summary)


VERIFIED_CHECKS = [
    "manifest parses (safe YAML) and conforms to format 1.x",
    "tensor file is a regular file inside the bundle",
    "sha256 of the tensor file matches the manifest",
    "tensor names, shapes and dtypes match the inventory and each other",
    "values obey the format: finite, labels in range, 0/1 mask, symmetric non-negative adjacency with zero diagonal",
]


def decode_bundle(bundle, model: Optional[str]) -> list[dict]:
    from talk_cli.bundle.decode import nearest_tokens
    from talk_cli.encode.lm import DEFAULT_MODEL, load_language_model

    name = model or bundle.lm.name
    lm = load_language_model(None if name == DEFAULT_MODEL else name)
    if lm.identity.weights_sha256 != bundle.lm.weights_sha256:
        stderr.print(f"note: the weights of {name!r} differ from those the bundle was made with; tokens are approximate")
    names = bundle.dataset.label_names
    return [
        {"node": node, "class": names[int(label)], "tokens": " ".join(tokens)}
        for node, (label, tokens) in enumerate(zip(bundle.labels, nearest_tokens(bundle, lm)))
    ]


def render_summary(summary: dict) -> None:
    from rich.table import Table

    out = Console(highlight=False, soft_wrap=True)

    def section(title: str, rows: dict) -> None:
        table = Table(title=title, show_header=False, title_justify="left", title_style="bold")
        table.add_column(style="cyan")
        table.add_column(overflow="fold")
        for key, value in rows.items():
            table.add_row(str(key), value if isinstance(value, str) else json.dumps(value))
        out.print(table)

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
        out.print("[bold green]verified:[/]")
        for check in summary["verified"]:
            out.print(f"  ok  {check}")
    if "decoded" in summary:
        table = Table(title="decoded synthetic texts (nearest vocabulary tokens)", title_justify="left", title_style="bold")
        table.add_column("node")
        table.add_column("class")
        table.add_column("tokens")
        for row in summary["decoded"]:
            table.add_row(str(row["node"]), row["class"], row["tokens"])
        out.print(table)
    if "plot" in summary:
        out.print(f"plot: {summary['plot']}")


def main() -> None:
    app()
