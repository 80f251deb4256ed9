"""Kernel ridge regression from the synthetic set to real nodes, and its loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def krr_weights(k_ss: torch.Tensor, y_s: torch.Tensor, ridge: float) -> torch.Tensor:
    """(K_SS + λ·tr(K_SS)/n · I)⁻¹ Y_S: what a real row's cross kernel multiplies. The ridge scales
    with the kernel's size so that one λ suits kernels of any magnitude."""
    n = k_ss.shape[0]
    regularised = k_ss + ridge * torch.trace(k_ss) / n * torch.eye(n, dtype=k_ss.dtype, device=k_ss.device)
    return torch.linalg.solve(regularised, y_s)


def krr_predict(k_bs: torch.Tensor, k_ss: torch.Tensor, y_s: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ŷ_B = K_BS (K_SS + λ·tr(K_SS)/n · I)⁻¹ Y_S."""
    return k_bs @ krr_weights(k_ss, y_s, ridge)


def krr_loss(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int, kind: str = "mse", batch_size: int | None = None) -> torch.Tensor:
    """MSE against one-hot targets, or cross-entropy of the KRR scores, averaged over a batch of
    `batch_size` rows (default: these rows). When the rows are one process's share of the batch,
    the processes' losses add up to the whole batch's."""
    rows = prediction.shape[0] if batch_size is None else batch_size
    if kind == "mse":
        return F.mse_loss(prediction, F.one_hot(labels, num_classes).to(prediction.dtype), reduction="sum") / (rows * num_classes)
    return F.cross_entropy(prediction, labels, reduction="sum") / rows
