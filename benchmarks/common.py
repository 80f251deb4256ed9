"""Helpers shared by the benchmarks: machine facts, the one runner of child processes (`run_json`)
and the one writer of a marked section of a doc (`write_section`)."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from talk_cli.atomic import atomic_write_bytes


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32) -> float:
    """Best observed GEMM rate on this machine's `device` at `dtype` (GFLOP/s), the yardstick for efficiency."""
    size = size if device.type == "cpu" else 8192  # a GPU needs a large product to reach its peak
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def median_seconds(step: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls of `step`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_line() -> str:
    from talk_cli.device import device_name

    return f"{device_name(torch.device('cpu'))}, torch {torch.__version__} ({torch.get_num_threads()} threads), {datetime.date.today().isoformat()}"


def run_header(command: str, machine_note: str = "", device: torch.device = torch.device("cpu")) -> list[str]:
    """The two lines above every table in docs/: the command that wrote it and the machine it ran
    on (with its GPU when the run used one)."""
    gpu = f", on {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return [f"Command: `{command}`  ", f"Machine: {machine_line()}{gpu}{machine_note}  "]


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """`--device auto|cpu|cuda`, as `talk` takes it; the benchmarks default to the CPU, where their
    published tables were measured."""
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda (default: cpu)")


def resolved_device(parser: argparse.ArgumentParser, choice: str) -> torch.device:
    from talk_cli.device import resolve_device
    from talk_cli.errors import SettingsError

    try:
        return resolve_device(choice)
    except SettingsError as error:
        parser.error(str(error))


def setting(item: str) -> tuple[str, object]:
    """One `--set KEY=VALUE` as a distillation setting override (the value read as YAML: 0.5, true, krr)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"wants KEY=VALUE, got {item!r}")
    return key, yaml.safe_load(value)


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE ...`: recipes change, and this reruns a section's command as it ran under an older one."""
    parser.add_argument("--set", nargs="*", type=setting, default=[], metavar="KEY=VALUE", help="change the recipe's settings (YAML values)")


def recipe_settings(parser: argparse.ArgumentParser, dataset: str, changes: dict, recipe: str | None = None, **owned):
    """The distillation settings a benchmark runs: the recipe, changed by `--set`, then by what the
    script sets from its own flags (`owned`). A `--set` the settings reject, or one that names an
    owned key, exits 2 through argparse."""
    from talk_cli import pipeline
    from talk_cli.errors import SettingsError

    clash = sorted(changes.keys() & owned.keys())
    if clash:
        parser.error(f"--set {clash[0]}=...: this script sets {clash[0]} itself from its own options")
    try:
        settings, _ = pipeline.distill_settings(dataset, recipe, **changes, **owned)
    except SettingsError as error:
        parser.error(f"--set: {error}")
    return settings


def prepared_dataset(dataset: str, data_root: Path | None, max_length: int, device: torch.device = torch.device("cpu"), model: str | None = None):
    """The dataset with the LM (`model`, else the default) and its features at `max_length` tokens
    (from the cache when it is fresh): what every benchmark distils from and evaluates on, on `device`."""
    from talk_cli import pipeline
    from talk_cli.encode import EncodeSettings

    return pipeline.prepare(pipeline.load_dataset(dataset, data_root), model, settings=EncodeSettings(max_length=max_length), device=device)


def write_section(doc: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- name:begin -->` and `<!-- name:end -->` in `doc` (appended if absent).
    docs/results.md is generated: a section meant for it goes into the results log, and the page
    is then regenerated from the log (`results_page.py`)."""
    from benchmarks.results_page import LOG, PAGE, write_page

    if Path(doc).resolve() == PAGE:
        write_section(LOG, name, body)
        write_page()
        return
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = doc.read_text() if doc.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_bytes(doc, text.encode())  # rewritten after every row of a long run: never torn by a stop


def run_json(command: list[str], show_stderr: bool = False) -> tuple[dict, float]:
    """Run `command` as a fresh process (so that its peak RSS and threads are its own) and return
    the JSON object it prints last on stdout and its wall seconds. Its stderr (progress) goes to
    ours when `show_stderr`; a failure stops the benchmark with the child's error."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=None if show_stderr else subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        error = "its error is printed above" if show_stderr else done.stderr[-3000:]
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}: {error}")
    out = done.stdout.strip()
    try:
        return json.loads(out), seconds  # one (indented) object: `talk ... --json`
    except json.JSONDecodeError:
        return json.loads(out.splitlines()[-1]), seconds  # a child that printed lines before its result
