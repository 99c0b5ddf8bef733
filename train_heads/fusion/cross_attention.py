"""Symmetric cross-attention fusion (text <-> image), as in the "seven-model comparison" of
uni- and multimodal genre classifiers: each modality's tokens attend the other's, the two
attended sequences are pooled, concatenated and classified by an MLP.

    s_m = LayerNorm(x_m) W_m                                  (B, T_m, d)  align to d_model
    a_m = LayerNorm(s_m + MHA(Q=s_m, K=V=s_{-m}))             (B, T_m, d)  8-head attention
    logits = MLP([mean_T a_1; ...; mean_T a_M])               (B, C)
MHA is scaled dot-product attention softmax(Q K^T / sqrt(d_k)) V (Vaswani et al. 2017, eq. 1)
with h heads. With two modalities, text queries attend image tokens and image queries attend
text tokens; with more, each modality attends the concatenation of all the others.

Tokens: with ``m.tokens`` (B, T, Dt) the projection maps token_dims[m]; without, the pooled
vector is a one-token sequence (``token_sequence``). Missing modalities: their tokens are
masked out as keys (a query whose keys are all absent gets no update, only the residual) and
as pooled queries (their block of the concatenation is zero).

explain(): {"attn.<query>-><keys>": (B, T_query, T_keys) head-averaged attention weights}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import MLP, CrossAttention, masked_mean, modality_tokens
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class CrossAttentionHead(FusionHead):
    name = "cross_attention"
    uses_tokens = True

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 d_model: int = 256, num_heads: int = 8, hidden: int = 512, dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims)
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d_model))
                                   for m, d in self.token_dims.items()})
        self.cross = nn.ModuleDict({m: CrossAttention(d_model, num_heads, dropout) for m in dims})
        self.mlp = MLP(len(dims) * d_model, hidden, num_classes, layers=1, dropout=dropout)
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        seqs, masks = {}, {}
        for m in self.modalities:
            x, masks[m] = modality_tokens(feats, m)  # (B, T_m, Dt_m), (B, T_m)
            seqs[m] = self.proj[m](x)  # (B, T_m, d)
        pooled, self._last = [], {}
        for m in self.modalities:
            others = [o for o in self.modalities if o != m]
            kv = torch.cat([seqs[o] for o in others], 1)  # (B, T_others, d)
            kv_mask = torch.cat([masks[o] for o in others], 1)  # (B, T_others)
            a, w = self.cross[m](seqs[m], kv, kv_mask)  # (B, T_m, d), (B, T_m, T_others)
            self._last[f"attn.{m}->{'+'.join(others)}"] = w.detach()
            pooled.append(masked_mean(a, masks[m]))  # (B, d), zero where m is absent
        return self.mlp(torch.cat(pooled, -1))  # (B, M * d) -> (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
