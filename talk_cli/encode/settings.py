"""What the encode stage reads from the command line and recipes, in a module that imports no
torch, so the CLI can build its options (and answer --help) without loading it: how texts are
encoded and pooled, and the LoRA settings of a trainable copy of the LM."""

from __future__ import annotations

from dataclasses import dataclass

from talk_cli.device import COMPUTE_DTYPES, resolve_dtype
from talk_cli.errors import SettingsError
from talk_cli.options import setting

# How token states become one node feature: the mean of the attended states (what
# all-MiniLM-L6-v2 was trained for), or the first token's state (BERT's [CLS] convention).
POOLINGS = ("mean", "cls")
DEFAULT_POOLING = "mean"

DEFAULT_MAX_LENGTH = 128  # tokens per node text (longer texts are truncated)


@dataclass(frozen=True)
class EncodeSettings:
    max_length: int = setting(DEFAULT_MAX_LENGTH, "Tokens per text (longer texts are truncated).")
    batch_size: int = setting(32, "Texts per forward pass.")
    dtype: str = setting("float32", "Compute dtype.", choices=COMPUTE_DTYPES)
    chunk_size: int = setting(2048, "Nodes per resumable chunk of the features cache.")

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise SettingsError(f"--max-length must be at least 2 (room for the special tokens), got {self.max_length}")
        if self.batch_size < 1:
            raise SettingsError(f"--batch-size must be positive, got {self.batch_size}")
        if self.chunk_size < 1:
            raise SettingsError(f"--chunk-size must be positive, got {self.chunk_size}")
        resolve_dtype(self.dtype)


# The official TaLK code's LoRA (rank 4, alpha 8, dropout 0.05); rank 0 here fine-tunes every weight.
LORA_ALPHA = 8.0
LORA_DROPOUT = 0.05
LORA_RANK_HELP = "LoRA rank of the LM's attention projections while it is fine-tuned (0: fine-tune every weight)."
LORA_ALPHA_HELP = "LoRA scaling alpha (the adapters' update is scaled by alpha / rank)."
LORA_DROPOUT_HELP = "Dropout on the LoRA adapters' input."


def check_lora(rank: int, alpha: float, dropout: float) -> None:
    if rank < 0:
        raise SettingsError(f"--lora-rank must not be negative, got {rank}")
    if not alpha > 0:
        raise SettingsError(f"--lora-alpha must be positive, got {alpha}")
    if not 0 <= dropout < 1:
        raise SettingsError(f"--lora-dropout must be in [0, 1), got {dropout}")
