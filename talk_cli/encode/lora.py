"""A trainable copy of the LM, for the joint protocol and the inner loop: every weight, or
low-rank adapters (LoRA, through peft) on the attention projections with the pretrained
weights frozen. The caller's LM is never changed: bundles are read with the pretrained LM, and
its weights hash is what they record."""

from __future__ import annotations

import copy
import dataclasses

import torch

from talk_cli.encode.lm import LanguageModel
from talk_cli.encode.settings import LORA_ALPHA, LORA_DROPOUT
from talk_cli.errors import ModelError

# BERT-family names of the attention projections the official code adapts (query, key, value).
# Other encoders fall back to peft's own table of target modules for their model type.
ATTENTION_PROJECTIONS = ("query", "key", "value")


def trainable_copy(lm: LanguageModel, device: torch.device, rank: int = 0, alpha: float = LORA_ALPHA, dropout: float = LORA_DROPOUT) -> LanguageModel:
    """A float32 copy of `lm` on `device` whose trainable parameters (`requires_grad`) are every
    weight (rank 0) or only fresh LoRA adapters of that rank (their B starts at zero, so the copy
    computes what `lm` computes until it is trained)."""
    model = copy.deepcopy(lm.model).to(device=device, dtype=torch.float32)
    if rank == 0:
        return dataclasses.replace(lm, model=model.requires_grad_(True))
    from peft import LoraConfig, inject_adapter_in_model

    names = [name for name, _ in model.named_modules()]
    targets = [suffix for suffix in ATTENTION_PROJECTIONS if any(name.endswith("." + suffix) for name in names)] or None
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    try:
        model = inject_adapter_in_model(config, model)
    except ValueError as err:
        raise ModelError(f"cannot put LoRA adapters on {lm.identity.name!r}: {str(err).splitlines()[0]} (use --lora-rank 0)") from None
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return dataclasses.replace(lm, model=model.to(device))


def trained_parameters(lm: LanguageModel) -> list[torch.nn.Parameter]:
    """What an optimiser of a `trainable_copy` updates."""
    return [parameter for parameter in lm.model.parameters() if parameter.requires_grad]
