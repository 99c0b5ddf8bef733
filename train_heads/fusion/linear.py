"""Unimodal logistic-regression baseline: logits = W x_m + b on one modality.

The simplest probe of how linearly separable the genres are in one encoder's features
(the GMU paper's single-modality "Logistic" rows; Arevalo et al. 2017, arXiv:1702.01992).
Other modalities are ignored; rows where the modality is absent are zeros, so they get b.
"""
from __future__ import annotations

from torch import nn

from train_heads.fusion._blocks import UnimodalHead
from train_heads.fusion.base import register_fusion


@register_fusion
class LinearHead(UnimodalHead):
    name = "linear"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 modality: str | None = None) -> None:
        super().__init__(dims, num_classes, token_dims, modality)
        self.net = nn.Linear(self.d_in, num_classes)  # (B, D_m) -> (B, C)
