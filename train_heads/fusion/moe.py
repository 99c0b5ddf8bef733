"""Mixture of experts over modalities (the MoE baselines of Arevalo et al. 2017, "Gated
Multimodal Units for Information Fusion", arXiv:1702.01992, fusion baselines;
Jordan & Jacobs 1994).

One expert per modality sees only that modality; a gating network sees all of them:
    l_m = expert_m(x_m)                                   (B, M, C) expert logits
    tied:   g = softmax_m(W_g [x_1; ...; x_M])            (B, M)    one weight per modality
    untied: g_c = softmax_m(W_g^c [x_1; ...; x_M])        (B, M, C) a gate per class
    p_c = sum_m g_{m(,c)} sigmoid(l_{m,c})                (B, C)    mixture of expert probabilities
    logits = log p - log(1 - p)                           (B, C)    computed exactly in log space
``expert``: "logistic" (a linear layer) or "maxout" (MaxoutMLP; the paper's two variants),
``tied``: share one gate per modality across classes (True) or gate each class (False).
Missing modalities: the gate softmax runs over the present modalities only, so an absent
modality's expert gets weight 0 (rows with nothing present gate over all).

explain(): {"gates": (B, M) if tied else (B, M, C), modalities in sorted order}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import MaxoutMLP, masked_log_softmax, mixture_logit, present_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class MoEHead(FusionHead):
    name = "moe"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 expert: str = "maxout", tied: bool = True, hidden: int = 512, layers: int = 1,
                 pieces: int = 2, dropout: float = 0.3) -> None:
        super().__init__(dims, num_classes, token_dims)
        experts = {"logistic": lambda d: nn.Linear(d, num_classes),
                   "maxout": lambda d: MaxoutMLP(d, hidden, num_classes, layers, pieces, dropout)}
        if expert not in experts:
            raise ValueError(f"moe: expert={expert!r}; choose from {sorted(experts)}")
        self.tied = tied
        self.experts = nn.ModuleDict({m: experts[expert](d) for m, d in dims.items()})
        n_out = len(dims) * (1 if tied else num_classes)
        self.gate = nn.Linear(sum(dims.values()), n_out)  # W_g
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        xs = [feats[m] for m in self.modalities]
        logits = torch.stack([self.experts[m](x) for m, x in zip(self.modalities, xs)], 1)  # (B, M, C)
        g = self.gate(torch.cat(xs, -1))  # (B, M) or (B, M * C)
        present = present_mask(feats, self.modalities)  # (B, M)
        if not self.tied:
            g = g.unflatten(1, (len(xs), self.num_classes))  # (B, M, C)
            present = present.unsqueeze(-1).expand_as(g)  # (B, M, C)
        log_g = masked_log_softmax(g, present, dim=1)  # log gate weights, sum_m g = 1
        self._last = {"gates": log_g.detach().exp()}
        return mixture_logit(log_g, logits)  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
