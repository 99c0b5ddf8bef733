"""Unimodal MaxoutMLP baseline (Arevalo et al. 2017, "Gated Multimodal Units for Information
Fusion", arXiv:1702.01992, experiments: the MaxoutMLP used on each single modality).

A maxout layer (Goodfellow et al. 2013, arXiv:1302.4389) computes
    h_j = max_{k=1..K} (x^T W_{.jk} + b_{jk}),
i.e. each unit is the max of K linear pieces. The GMU paper tuned depth, width and K by
random search; we default to 2 maxout layers of 512 units with K=2 pieces and dropout 0.3,
then a linear output layer. Other modalities are ignored; absent rows are zeros.
"""
from __future__ import annotations

from train_heads.fusion._blocks import MaxoutMLP, UnimodalHead
from train_heads.fusion.base import register_fusion


@register_fusion
class MaxoutHead(UnimodalHead):
    name = "maxout"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 modality: str | None = None, hidden: int = 512, layers: int = 2, pieces: int = 2,
                 dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims, modality)
        # (B, D_m) -> layers x (B, hidden) -> (B, C)
        self.net = MaxoutMLP(self.d_in, hidden, num_classes, layers=layers, pieces=pieces, dropout=dropout)
