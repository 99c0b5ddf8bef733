"""Average-probability fusion: one classifier per modality, average their probabilities.

    p_m = sigmoid(f_m(x_m))                    (B, M, C)
    p   = (1 / |P_b|) sum_{m in P_b} p_m       (B, C),  P_b = modalities present in row b
    logits = log p - log(1 - p)                (B, C)

The "Average probability" baseline of Arevalo et al. 2017 (arXiv:1702.01992, fusion
baselines of the experiments). The head returns logit(p) so the usual BCE-with-logits loss
and 0-thresholding still apply; the logit is computed in log space (logsumexp of
log-sigmoids, see ``mixture_logit``), which is exact where clamping p to [eps, 1-eps]
would saturate and stop gradients.
Missing modalities are left out of the average (rows with nothing present average all).
``classifier`` picks f_m: "linear" (default), "mlp" or "maxout".

explain(): {"probs": (B, M, C) per-modality probabilities, modalities in sorted order}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import make_classifier, mixture_logit, present_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class AvgProbsHead(FusionHead):
    name = "avg_probs"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 classifier: str = "linear", hidden: int = 512, dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims)
        self.clf = nn.ModuleDict({m: make_classifier(classifier, d, hidden, num_classes, dropout)
                                  for m, d in dims.items()})
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = torch.stack([self.clf[m](feats[m]) for m in self.modalities], 1)  # (B, M, C)
        present = present_mask(feats, self.modalities)  # (B, M)
        present = present | ~present.any(1, keepdim=True)  # nothing present -> average all
        log_w = present.float().div(present.sum(1, keepdim=True)).log()  # (B, M), -inf if absent
        self._last = {"probs": logits.detach().sigmoid()}
        return mixture_logit(log_w, logits)  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
