"""IDKG's auxiliary losses (Li et al. 2023, paper 002): the Attention Teacher loss (eq. 7) and
Genre-Centroid Anchored Contrastive Learning (G-CACL, eq. 8-13), on plain tensors.

The paper SUMS both over the batch (as its BCE, eq. 14); `reduction="mean"` (our default in
the head) divides by the rows used, so the auxiliary terms keep the scale of the mean-reduced
classification losses every head trains with, whatever the batch size.
"""
from __future__ import annotations

import torch

_EPS = 1e-6  # keeps log(1 - |A - Y|) finite when the attention is exactly 0 or 1 off its label


def attention_teacher_loss(att_kg: torch.Tensor, pseudo: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 7: -sum_i log(1 - |A_i^K - Y~_i|); att_kg (B,) the KG attention (a vector A^K is
    averaged to a scalar first, as the paper says), pseudo (B,) the eq. 6 labels in [0, 1).
    1 - |A - Y~| is clamped at 1e-6: a sigmoid that saturates to exactly 1 in float32 against
    a label of 0 would otherwise give log(0) = -inf (at most -log(1e-6) = 13.8 per row)."""
    loss = -torch.log((1.0 - (att_kg - pseudo).abs()).clamp_min(_EPS))
    return loss.sum() if reduction == "sum" else loss.mean()


def gcacl_loss(fused: torch.Tensor, targets: torch.Tensor, genre_proj: torch.Tensor, centroid_proj: torch.Tensor,
               tau: float, reduction: str = "mean") -> torch.Tensor:
    """Eq. 13 for a batch.

    fused (B, D): F^fu; targets (B, C) 0/1; genre_proj (C, D): Linear(E^g) of every genre (eq. 12);
    centroid_proj (B, D): Linear(C_i), C_i the mean genre embedding of row i (eq. 9).
    Positive: F_i . f_{C_i}; negatives: the genres of the batch (eq. 10) that row i lacks (eq. 11).
    Rows without a genre have no anchor and are skipped (they add 0 and are not counted)."""
    y = targets > 0.5
    has = y.any(1)
    if not has.any():
        return fused.sum() * 0.0
    pos = (fused * centroid_proj).sum(1) / tau  # (B,)
    neg = fused @ genre_proj.T / tau  # (B, C)
    union = y.any(0, keepdim=True)  # (1, C): genres present in the batch
    neg = neg.masked_fill(~(union & ~y), float("-inf"))
    denom = torch.logsumexp(torch.cat([pos[:, None], neg], 1), dim=1)  # log(exp(pos) + q_i)
    loss = (denom - pos)[has]
    return loss.sum() if reduction == "sum" else loss.mean()


def centroids(targets: torch.Tensor, genre_emb: torch.Tensor) -> torch.Tensor:
    """Eq. 9: C_i = mean of the embeddings of row i's genres, (B, D_k); zero for a row without."""
    y = (targets > 0.5).float()
    return (y @ genre_emb) / y.sum(1, keepdim=True).clamp_min(1.0)
