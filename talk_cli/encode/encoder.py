"""Encode every node text of a TAG into one pooled LM feature vector.

Work is done in chunks of nodes; each finished chunk is saved under `<features>.partial/`,
so an interrupted run resumes where it stopped. Within a chunk, texts are sorted by
token count before batching so that each batch pads to a similar length.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from talk_cli import distributed, threads
from talk_cli.atomic import atomic_write_bytes
from talk_cli.data.tag import TAG
from talk_cli.device import resolve_dtype
from talk_cli.encode.cache import (
    FEATURES_TENSOR,
    FeatureKey,
    default_features_path,
    read_fresh_features,
)
from talk_cli.encode.lm import LanguageModel, check_length, encode_ids
from talk_cli.encode.settings import EncodeSettings
from talk_cli.provenance import Provenance

ProgressCallback = Callable[[int], None]  # called with the number of texts just finished


@dataclass(frozen=True)
class EncodeResult:
    features: torch.Tensor  # float32 [num_nodes, hidden]
    path: Path
    reused: bool  # True when a fresh cache was found and nothing was encoded
    seconds: float
    num_tokens: int  # tokens actually run through the LM (0 when reused)
    resumed_chunks: int  # chunks taken from an interrupted earlier run


def encode_texts(
    texts: list[str],
    lm: LanguageModel,
    settings: EncodeSettings,
    device: torch.device,
    on_progress: ProgressCallback | None = None,
) -> tuple[torch.Tensor, int]:
    """Pooled features of `texts` (float32, CPU, input order; the LM's pooling) and the token count."""
    ids = lm.tokenizer(texts, truncation=True, max_length=settings.max_length, add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    pad_id = lm.tokenizer.pad_token_id or 0
    out = torch.empty(len(texts), lm.identity.hidden_size)
    for start in range(0, len(order), settings.batch_size):
        batch = order[start : start + settings.batch_size]
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            attention_mask[row, : len(ids[i])] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        with torch.inference_mode():
            out[batch] = encode_ids(lm, input_ids, attention_mask).float().cpu()
        if on_progress:
            on_progress(len(batch))
    return out, sum(len(i) for i in ids)


def encode_tag(
    tag: TAG,
    lm: LanguageModel,
    settings: EncodeSettings = EncodeSettings(),
    device: torch.device = torch.device("cpu"),
    out: Path | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> EncodeResult:
    """Features for every node of `tag`, from the cache when fresh, else encoded and cached."""
    check_length(lm, settings.max_length, "--max-length")
    key = FeatureKey(Provenance.of(tag, lm.identity, settings.max_length), settings.dtype)
    path = Path(out) if out is not None else default_features_path(key)
    started = time.perf_counter()
    if not force:
        cached, _ = read_fresh_features(path, key)
        if cached is not None:
            return EncodeResult(cached, path, True, time.perf_counter() - started, 0, 0)

    partial = path.with_name(path.name + ".partial")
    key_file = partial / "key.yaml"
    if distributed.rank() == 0:
        if partial.is_dir() and (force or not key_file.is_file() or yaml.safe_load(key_file.read_text()) != key.recorded()):
            shutil.rmtree(partial)  # left by a run with other settings: not resumable
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(key_file, yaml.safe_dump(key.recorded()).encode())
    distributed.barrier()  # the partial folder is ready for every rank

    # Under torchrun, rank r encodes chunks r, r + N, r + 2N, ...; a chunk is encoded the same
    # way whichever rank does it, so the assembled cache equals a single process's.
    # The caller's LM moves to the device but keeps its weights: another compute dtype reads a copy,
    # so that a later distillation or a bundle's weights hash sees the weights as loaded.
    dtype = resolve_dtype(settings.dtype)
    lm.model.to(device)
    if next(lm.model.parameters()).dtype != dtype:
        lm = dataclasses.replace(lm, model=copy.deepcopy(lm.model).to(dtype=dtype))
    chunks, num_tokens, resumed = {}, 0, 0
    pieces = [  # (chunk file, its texts) in node order
        (partial / f"chunk-{index:06d}.safetensors", tag.texts[start : start + settings.chunk_size])
        for index, start in enumerate(range(0, tag.num_nodes, settings.chunk_size))
    ]
    for index, (chunk_file, texts) in enumerate(pieces):
        if index % distributed.world_size() != distributed.rank():
            continue
        chunk = read_chunk(chunk_file, len(texts), lm.identity.hidden_size)
        threads.adapt()  # a chunk boundary: follow the machine's load
        if chunk is None:
            chunk, tokens = encode_texts(texts, lm, settings, device, on_progress)
            num_tokens += tokens
            atomic_write_bytes(chunk_file, save({FEATURES_TENSOR: chunk}))
        else:
            resumed += 1
            if on_progress:
                on_progress(len(texts))
        chunks[index] = chunk
    # Rank 0 reports for the whole run, so the counts are every rank's, summed (this also waits
    # until every chunk is on disk).
    counts = distributed.sum_over_ranks(torch.tensor([num_tokens, resumed], device=device))
    num_tokens, resumed = counts.tolist()

    if distributed.rank() == 0:
        features = torch.cat(
            [chunks[index] if index in chunks else read_chunk(file, len(texts), lm.identity.hidden_size) for index, (file, texts) in enumerate(pieces)]
        )
        atomic_write_bytes(path, save({FEATURES_TENSOR: features}, metadata=key.metadata()))  # the key travels inside
        shutil.rmtree(partial, ignore_errors=True)
    distributed.barrier()  # the cache is complete
    if distributed.rank() != 0:
        features, _ = read_fresh_features(path, key)
    return EncodeResult(features, path, False, time.perf_counter() - started, num_tokens, resumed)


def read_chunk(path: Path, rows: int, hidden: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        chunk = load_file(str(path))[FEATURES_TENSOR]
    except (SafetensorError, OSError, KeyError):
        return None
    return chunk if tuple(chunk.shape) == (rows, hidden) else None
