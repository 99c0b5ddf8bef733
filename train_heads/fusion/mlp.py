"""Unimodal MLP baseline: logits = W_2 Dropout(GELU(W_1 x_m)) (``layers`` hidden layers).

A non-linear single-modality probe; other modalities are ignored, absent rows are zeros.
"""
from __future__ import annotations

from train_heads.fusion._blocks import MLP, UnimodalHead
from train_heads.fusion.base import register_fusion


@register_fusion
class MLPHead(UnimodalHead):
    name = "mlp"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 modality: str | None = None, hidden: int = 512, layers: int = 1,
                 dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims, modality)
        self.net = MLP(self.d_in, hidden, num_classes, layers=layers, dropout=dropout)  # (B, D_m) -> (B, C)
