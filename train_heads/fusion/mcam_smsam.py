"""MCAM + SMSAM fusion (seed paper "004"): a multimodal cross-attention module followed by a
sequential multi-head self-attention module, with its ablations as registered names.

    s_m = LayerNorm(x_m) W_m                               (B, T_m, d)  alignment to d_model
  MCAM (use_mcam), for each modality m, keys = the other modalities' tokens:
    s_m <- LayerNorm(s_m + Dropout(MHA(Q=s_m, K=V=s_{-m})))        residual + post-norm
  SMSAM (use_smsam), over the concatenation S = [s_1; ...; s_M]    (B, sum T_m, d):
    L x pre-norm transformer block:  S <- S + MHA(LN(S));  S <- S + FFN(LN(S))
    then a final LayerNorm
  head:  logits = W_2 Dropout(GELU(W_1 mean_T(S)))       d -> ffn_hidden (512 -> 128) -> C
MHA: Vaswani et al. 2017 (arXiv:1706.03762), eq. 1 with h heads; pre-norm blocks as in
Xiong et al. 2020 (arXiv:2002.04745). Registered: ``mcam_smsam`` (both), ``mcam`` (no SMSAM),
``smsam`` (no MCAM); "minus both" is ``mcam_smsam`` with use_mcam=False, use_smsam=False.

Tokens as in ``cross_attention``: real tokens when given, else the pooled vector as one token.
Missing modalities are masked out as keys and from the mean pool (a row with nothing present
keeps one zero token so attention stays defined).

explain(): {"attn.<query>-><keys>": (B, T_query, T_keys)} cross-attention weights (MCAM only).
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import CrossAttention, masked_mean, modality_tokens, safe_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class MCAMSMSAMHead(FusionHead):
    name = "mcam_smsam"
    uses_tokens = True
    _defaults: dict[str, bool] = {"use_mcam": True, "use_smsam": True}

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 d_model: int = 512, num_heads: int = 8, num_layers: int = 4, hidden: int = 128,
                 dropout: float = 0.3, use_mcam: bool | None = None, use_smsam: bool | None = None) -> None:
        super().__init__(dims, num_classes, token_dims)
        self.use_mcam = self._defaults["use_mcam"] if use_mcam is None else use_mcam
        self.use_smsam = self._defaults["use_smsam"] if use_smsam is None else use_smsam
        self.align = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d_model))
                                    for m, d in self.token_dims.items()})
        self.cross = nn.ModuleDict({m: CrossAttention(d_model, num_heads, dropout) for m in dims}
                                   if self.use_mcam else {})
        n_blocks = num_layers if self.use_smsam else 0
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(n_blocks))
        self.norm = nn.LayerNorm(d_model) if n_blocks else nn.Identity()
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        seqs, masks = {}, {}
        for m in self.modalities:
            x, masks[m] = modality_tokens(feats, m)  # (B, T_m, Dt_m), (B, T_m)
            seqs[m] = self.align[m](x)  # (B, T_m, d)
        self._last = {}
        if self.use_mcam:  # every modality attends the others, computed from the aligned inputs
            new = {}
            for m in self.modalities:
                others = [o for o in self.modalities if o != m]
                kv = torch.cat([seqs[o] for o in others], 1)  # (B, T_others, d)
                kv_mask = torch.cat([masks[o] for o in others], 1)  # (B, T_others)
                new[m], w = self.cross[m](seqs[m], kv, kv_mask)  # (B, T_m, d)
                self._last[f"attn.{m}->{'+'.join(others)}"] = w.detach()
            seqs = new
        s = torch.cat([seqs[m] for m in self.modalities], 1)  # (B, T, d), T = sum T_m
        mask = torch.cat([masks[m] for m in self.modalities], 1)  # (B, T)
        pad = ~safe_mask(mask)  # (B, T) True = ignore
        for blk in self.blocks:
            s = blk(s, src_key_padding_mask=pad)  # (B, T, d)
        pooled = masked_mean(self.norm(s), ~pad)  # (B, d)
        return self.ffn(pooled)  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)


@register_fusion
class MCAMHead(MCAMSMSAMHead):
    """Ablation: cross-attention only (no SMSAM self-attention blocks)."""
    name = "mcam"
    _defaults = {"use_mcam": True, "use_smsam": False}


@register_fusion
class SMSAMHead(MCAMSMSAMHead):
    """Ablation: self-attention stack over the concatenated aligned sequences, no MCAM."""
    name = "smsam"
    _defaults = {"use_mcam": False, "use_smsam": True}
