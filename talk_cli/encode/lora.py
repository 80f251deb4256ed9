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

# The attention's query, key and value projections, which the official code adapts, as each encoder
# family names them: BERT and RoBERTa, MPNet, DistilBERT, DeBERTa-v2, and most decoders. peft's own
# table of target modules has no entry for some of these (MPNet); an encoder named otherwise falls
# back to that table.
ATTENTION_PROJECTIONS = (
    ("query", "key", "value"),
    ("q", "k", "v"),
    ("q_lin", "k_lin", "v_lin"),
    ("query_proj", "key_proj", "value_proj"),
    ("q_proj", "k_proj", "v_proj"),
)


def attention_projections(model: torch.nn.Module) -> list[str] | None:
    """The first family of projection names of which `model` has every one as a linear layer."""
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    return next((list(names) for names in ATTENTION_PROJECTIONS if linear.issuperset(names)), None)


def trainable_copy(lm: LanguageModel, device: torch.device, rank: int = 0, alpha: float = LORA_ALPHA, dropout: float = LORA_DROPOUT) -> LanguageModel:
    """A float32 copy of `lm` on `device` whose trainable parameters (`requires_grad`) are every
    weight (rank 0) or only fresh LoRA adapters of that rank (their B starts at zero, so the copy
    computes what `lm` computes until it is trained)."""
    model = copy.deepcopy(lm.model).to(device=device, dtype=torch.float32)
    if rank == 0:
        return dataclasses.replace(lm, model=model.requires_grad_(True))
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=attention_projections(model))
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
