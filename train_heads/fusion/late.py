"""Late fusion: one classifier per modality, logits mixed with learned softmax weights.

    l_m = f_m(x_m)                              (B, C)  per-modality logits
    alpha = softmax(a),  a in R^M learned       (M,)    global modality weights
    logits = sum_m w_{b,m} l_m,  w_{b,.} = alpha renormalised over the modalities present in row b

Classic score-level (late) fusion, e.g. the weighted late-fusion baselines compared in
Arevalo et al. 2017 (arXiv:1702.01992) and Vielzeuf et al. 2018 (arXiv:1808.07275).
Missing modalities: a row's absent modalities get weight 0 and the rest are renormalised,
so an item without a poster is classified by its text classifier alone (rows with nothing
present use alpha as is). ``classifier`` picks f_m: "linear" (default), "mlp" or "maxout".

explain(): {"alpha": (M,) global weights, "weights": (B, M) per-row weights used},
modalities in sorted order.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import make_classifier, masked_softmax, present_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class LateHead(FusionHead):
    name = "late"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 classifier: str = "linear", hidden: int = 512, dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims)
        self.clf = nn.ModuleDict({m: make_classifier(classifier, d, hidden, num_classes, dropout)
                                  for m, d in dims.items()})
        self.a = nn.Parameter(torch.zeros(len(dims)))  # softmax(a) = alpha, uniform at start
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = torch.stack([self.clf[m](feats[m]) for m in self.modalities], 1)  # (B, M, C)
        present = present_mask(feats, self.modalities)  # (B, M)
        w = masked_softmax(self.a.expand_as(present), present, dim=1)  # (B, M)
        self._last = {"alpha": self.a.detach().softmax(0), "weights": w.detach()}
        return (w.unsqueeze(-1) * logits).sum(1)  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
