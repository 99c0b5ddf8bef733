"""Linear-sum fusion: project each modality linearly into one hidden space and add.

    h = sum_m p_m * (W_m x_m + b_m)     (B, H),  p_m = 1 if modality m is present else 0
    logits = classifier(h)

The "Linear sum" baseline of Arevalo et al. 2017 ("Gated Multimodal Units for Information
Fusion", arXiv:1702.01992, fusion baselines of the experiments), where a MaxoutMLP
classifies the summed projection, so the default ``classifier`` is "maxout" (one maxout
layer; "mlp" and "linear" also work).
Absent modalities contribute nothing, not even their projection bias.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import make_classifier, present_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class LinearSumHead(FusionHead):
    name = "linear_sum"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 hidden: int = 512, dropout: float = 0.3, classifier: str = "maxout") -> None:
        super().__init__(dims, num_classes, token_dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items()})
        self.drop = nn.Dropout(dropout)
        self.head = make_classifier(classifier, hidden, hidden, num_classes, dropout)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        present = present_mask(feats, self.modalities).float()  # (B, M)
        h = sum(present[:, i:i + 1] * self.proj[m](feats[m])  # (B, H)
                for i, m in enumerate(self.modalities))
        return self.head(self.drop(h))  # (B, C)
