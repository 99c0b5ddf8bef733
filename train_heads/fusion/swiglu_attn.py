"""SwiGLU projections + multi-head self-attention over modality tokens (seed paper "000").

    t_m = SwiGLU_m(x_m) = (Swish(x_m W_m) * (x_m V_m)) W2_m        (B, d)   d = 512
    T   = [t_1; ...; t_M]                                           (B, M, d) one token per modality
    T'  = LayerNorm(T + Dropout(MHA(T, T, T)))                      (B, M, d) 8 heads
    u   = concat_m T'_m  (pool="concat")  or  mean_m T'_m  ("mean")  (B, M*d) / (B, d)
    logits = SwiGLU_head(Dropout(u))                                (B, C)
SwiGLU: Shazeer 2020, "GLU Variants Improve Transformer", arXiv:2002.05202, eq. 6;
MHA: Vaswani et al. 2017, arXiv:1706.03762, eq. 1. Dropout 0.3 as in the seed paper.

Works on pooled vectors only (``uses_tokens`` False): the sequence has one token per modality.
Missing modalities are masked as attention keys, and their token is zeroed before pooling
(mean pooling averages the present tokens only).

explain(): {"attn": (B, M, M) head-averaged self-attention weights, modalities in sorted order}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import SwiGLU, masked_mean, present_mask, safe_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class SwiGLUAttnHead(FusionHead):
    name = "swiglu_attn"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 d_model: int = 512, num_heads: int = 8, hidden: int = 512, dropout: float = 0.3,
                 pool: str = "concat") -> None:
        super().__init__(dims, num_classes, token_dims)
        if pool not in ("concat", "mean"):
            raise ValueError(f"swiglu_attn: pool={pool!r}; choose from ['concat', 'mean']")
        self.pool = pool
        self.proj = nn.ModuleDict({m: SwiGLU(d, d_model, d_model) for m, d in dims.items()})
        self.attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        d_out = d_model * (len(dims) if pool == "concat" else 1)
        self.head = SwiGLU(d_out, hidden, num_classes)
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        t = torch.stack([self.proj[m](feats[m]) for m in self.modalities], 1)  # (B, M, d)
        present = present_mask(feats, self.modalities)  # (B, M)
        a, w = self.attn(t, t, t, key_padding_mask=~safe_mask(present), need_weights=True)
        t = self.norm(t + self.drop(a))  # (B, M, d)
        self._last = {"attn": w.detach()}  # (B, M, M)
        if self.pool == "concat":
            u = (t * present.unsqueeze(-1)).flatten(1)  # (B, M * d), absent blocks zero
        else:
            u = masked_mean(t, present)  # (B, d)
        return self.head(self.drop(u))  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
