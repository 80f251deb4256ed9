"""The library pipeline: load a dataset, prepare it (LM and cached features), distil it, evaluate
a bundle. The `talk` CLI and the benchmarks both call these; progress goes to callbacks.

    from talk_cli import pipeline
    prepared = pipeline.prepare(pipeline.load_dataset("cora", data_root="../shared/datasets"))
    settings, recipe = pipeline.distill_settings("cora", ratio=0.01)
    bundle, outcome = pipeline.distill(prepared, settings, "cora-1pct")
    evaluation, mismatches = pipeline.evaluate(prepared, bundle)
    real = pipeline.real_graph(bundle, data_root="../shared/datasets")  # a PyG Data to test on
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import torch

from talk_cli import distributed
from talk_cli import threads as cpu_threads
from talk_cli.bundle import Bundle
from talk_cli.bundle.card import DEFAULT_LICENSE
from talk_cli.bundle.privacy import Exposure, measure_exposure
from talk_cli.data import load_tag
from talk_cli.data.split import SplitSpec
from talk_cli.data.tag import TAG
from talk_cli.device import processes_on_this_machine, resolve_device
from talk_cli.distill import DistillSettings, chosen_recipe, resolve_settings, run_distillation
from talk_cli.distill.loop import DistillOutcome, StepReport, phase_offsets
from talk_cli.encode import EncodeResult, EncodeSettings, LanguageModel, encode_tag, load_language_model
from talk_cli.encode.settings import DEFAULT_POOLING
from talk_cli.errors import SettingsError
from talk_cli.evaluate import EvalSettings, Evaluation, check_match, run_evaluation, training_defaults
from talk_cli.provenance import Provenance


@dataclass(frozen=True)
class StepProgress:
    """One distillation step on one count over the whole run: `done` of `total` steps of the warm
    start's free-feature loop and inversion and then the token loop (`report.phase` says which)."""

    report: StepReport
    done: int
    total: int


# Work done since the last call, in the unit its bar counts: nodes encoded, or epochs trained (the
# joint full-data reference reports each batch as a fraction of an epoch).
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Prepared:
    """A dataset ready to distil or evaluate: its graph, the LM and every node's cached features."""

    tag: TAG
    lm: LanguageModel
    encoded: EncodeResult
    settings: EncodeSettings
    device: torch.device

    @property
    def features(self) -> torch.Tensor:
        return self.encoded.features

    @property
    def provenance(self) -> Provenance:
        return Provenance.of(self.tag, self.lm.identity, self.settings.max_length)


def start(device: str = "auto", threads: int | None = None) -> tuple[torch.device, str | None]:
    """Resolve `device` (auto, cpu, cuda), join torchrun's process group if launched by it, and
    set torch's CPU threads: on the CPU, at most `threads` (default: every usable core) and no
    more than other processes leave free, read again at each phase of the work (`talk_cli/threads.py`). Also returns a note when `auto` chose the CPU on a machine with GPUs."""
    resolved = resolve_device(device)
    note = None
    if resolved.type == "cpu" and device == "auto" and torch.cuda.is_available():
        note = (
            f"--device auto runs on the CPU: torchrun started {processes_on_this_machine()} processes on this machine, "
            f"which has {torch.cuda.device_count()} GPU(s), and each process needs its own"
        )
    distributed.start(resolved)
    if threads is not None and threads < 1:
        raise SettingsError(f"--threads must be at least 1, got {threads}")
    if resolved.type == "cpu":
        cpu_threads.install(threads)  # at most `threads`, and no more than the cores other processes leave free
    elif threads is not None:
        torch.set_num_threads(threads)
    return resolved, note


def distill_steps(settings: DistillSettings) -> int:
    """How many steps `distill` reports in all (its `StepProgress.total`); 0 for a coreset."""
    return phase_offsets(settings)[1]


def load_dataset(dataset: str, data_root: str | os.PathLike | None = None, split: SplitSpec = SplitSpec()) -> TAG:
    """'demo', a dataset name under the data root, or a folder path (docs/data-format.md)."""
    return load_tag(dataset, Path(data_root) if data_root is not None else None, split)


def prepare(
    tag: TAG,
    lm: LanguageModel | str | None = None,
    settings: EncodeSettings = EncodeSettings(),
    device: torch.device = torch.device("cpu"),
    features_path: Path | None = None,
    force: bool = False,
    on_progress: Progress | None = None,
) -> Prepared:
    """Load the LM (default all-MiniLM-L6-v2) unless given one, and encode every node text,
    from the features cache when it is fresh."""
    lm = lm if isinstance(lm, LanguageModel) else load_language_model(lm)
    encoded = encode_tag(tag, lm, settings, device, out=features_path, force=force, on_progress=on_progress)
    return Prepared(tag, lm, encoded, settings, device)


def distill_settings(dataset: str, recipe: str | None = None, **overrides: Any) -> tuple[DistillSettings, Traversable | Path | None]:
    """Defaults < recipe < overrides. The recipe is the one named (a file, a shipped name, or
    `none` for the defaults alone), else the one shipped for this dataset, else none. Returns the
    settings and the recipe used."""
    source = chosen_recipe(dataset, recipe)
    return resolve_settings(source, overrides), source


def distill(
    prepared: Prepared,
    settings: DistillSettings,
    out: str | os.PathLike,
    force: bool = False,
    resume: bool = False,
    on_progress: Callable[[StepProgress], None] | None = None,
    command: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> tuple[Bundle, DistillOutcome]:
    """Distil the prepared dataset into the bundle `out` (written atomically, with its dataset
    card: `command` is the command line to record there, `license` the card's licence).
    `on_progress` hears every step; raising `StopRequested` there stops the run with a checkpoint."""
    if settings.max_length != prepared.settings.max_length:
        raise SettingsError(
            f"the settings read texts at {settings.max_length} tokens but the dataset was prepared at "
            f"{prepared.settings.max_length}: prepare it with EncodeSettings(max_length={settings.max_length})"
        )
    if settings.pooling != prepared.lm.identity.pooling:
        raise SettingsError(
            f"the settings pool the LM's states by {settings.pooling} but the dataset was prepared with {prepared.lm.identity.pooling} "
            f"pooling: load the LM with load_language_model(name, {settings.pooling!r})"
        )
    offsets, total = phase_offsets(settings)

    def on_step(report: StepReport) -> None:
        on_progress(StepProgress(report, offsets[report.phase] + report.step, total))

    return run_distillation(
        prepared.tag, prepared.lm, prepared.features, settings, prepared.device, Path(out), force, resume,
        on_step if on_progress else None, command, license,
    )  # fmt: skip


def evaluate(
    prepared: Prepared,
    bundle: Bundle | None = None,
    settings: EvalSettings | None = None,
    protocol: str = "gnn",
    allow_mismatch: bool = False,
    on_epoch: Progress | None = None,
) -> tuple[Evaluation, list[str]]:
    """Train on the bundle and test on the real graph, or (no bundle) the full-data reference.
    Without `settings`, the protocol's own schedule (`talk evaluate`'s defaults for it: the joint
    protocol fine-tunes the LM for 100 steps at 5e-6 on a bundle, 3 passes at 2e-5 on the full data).
    Also returns how the bundle's provenance differs from the prepared data (refused unless
    `allow_mismatch`)."""
    if settings is None:
        settings = EvalSettings(**training_defaults(protocol, bundle is None))
    problems = check_match(bundle, prepared.provenance, allow_mismatch) if bundle is not None else []
    evaluation = run_evaluation(
        prepared.tag, prepared.lm, prepared.features, bundle, settings, protocol, prepared.settings.max_length, prepared.device, on_epoch
    )
    return evaluation, problems


def evaluation_encoding(
    dataset: str, bundle: Bundle | None, model: str | None = None, max_length: int | None = None, pooling: str | None = None
) -> tuple[str | None, str, EncodeSettings]:
    """How to encode the real graph to evaluate `bundle` on (or, without one, to compute the
    reference): the LM, pooling and length given, else the bundle's; a reference reads the texts
    as `talk distill` does on the dataset (its recipe may shorten them), so that the bundles
    distilled from it find the reference in the cache. Returns (model, pooling, encode settings)."""
    if bundle is not None:
        model, pooling, max_length = model or bundle.lm.name, pooling or bundle.lm.pooling, max_length or bundle.lm.max_length
    length = max_length or distill_settings(dataset)[0].max_length
    return model, pooling or DEFAULT_POOLING, EncodeSettings(max_length=length)


def text_exposure(
    bundle: Bundle, data_root: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None, model: str | None = None
) -> tuple[Exposure, list[str]]:
    """What `bundle` reveals of the real texts: its token sequences decoded with its LM (or `model`)
    and compared with every text of its dataset (the bundle's name under the data root, unless
    given). Also returns notes on a dataset or LM other than the bundle's."""
    tag = load_dataset(str(dataset or bundle.dataset.name), data_root)
    lm = load_language_model(model or bundle.lm.name, bundle.lm.pooling)
    notes = []
    if tag.content_hash != bundle.dataset.content_hash:
        notes.append(f"the texts of {tag.name!r} are not those the bundle was made from (content hashes differ)")
    if lm.identity.weights_sha256 != bundle.lm.weights_sha256:
        notes.append(f"the weights of {lm.identity.name!r} differ from those the bundle was made with; decoded tokens are approximate")
    return measure_exposure(bundle, lm, tag.texts), notes


def real_graph(
    bundle: Bundle,
    data_root: str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    model: str | None = None,
    device: torch.device = torch.device("cpu"),
    on_progress: Progress | None = None,
):
    """The real graph a bundle was distilled from, as a `torch_geometric.data.Data`: x = the
    cached LM features (encoded first when the cache is cold), y, edge_index, texts and the
    bundle's train/val/test masks. The dataset is the bundle's name under the data root unless given
    (a name or a folder), the LM the bundle's unless given; a dataset, split or LM other than
    the bundle's is an error (`SettingsError`), so test nodes stay test nodes."""
    split = SplitSpec.from_description(bundle.dataset.split)
    tag = load_dataset(str(dataset or bundle.dataset.name), data_root, split)
    lm = load_language_model(model or bundle.lm.name, bundle.lm.pooling)
    prepared = prepare(tag, lm, EncodeSettings(max_length=bundle.lm.max_length), device, on_progress=on_progress)
    check_match(bundle, prepared.provenance, allow_mismatch=False)
    graph = tag.to_pyg()
    graph.x = prepared.features
    return graph
