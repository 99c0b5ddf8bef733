"""Early fusion: concatenate the modality vectors and classify with an MLP.

    h = [x_1; ...; x_M]    (B, sum_m D_m), absent modalities are zero blocks
    logits = MLP(h)

The "Concatenate" baseline of Arevalo et al. 2017 (arXiv:1702.01992, fusion baselines of
the experiments); there the MLP is a MaxoutMLP, here ``classifier`` picks "mlp" (default),
"maxout" or "linear".
"""
from __future__ import annotations

import torch

from train_heads.fusion._blocks import make_classifier
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class ConcatHead(FusionHead):
    name = "concat"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 hidden: int = 512, dropout: float = 0.3, classifier: str = "mlp") -> None:
        super().__init__(dims, num_classes, token_dims)
        d = sum(dims.values())
        self.net = make_classifier(classifier, d, hidden, num_classes, dropout)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        h = torch.cat([feats[m] for m in self.modalities], dim=-1)  # (B, sum D_m)
        return self.net(h)  # (B, C)

