"""CentralNet (Vielzeuf et al. 2018, "CentralNet: a Multilayer Approach for Multimodal
Fusion", arXiv:1808.07275, Sec. 3, eq. 1).

One MLP branch per modality plus a central branch fed by weighted sums of the branches:
    h_m^1 = f_m^1(x_m),  h_m^{i+1} = f_m^{i+1}(h_m^i)                  (B, H) per modality
    c^1     = sum_m a_m^1 p_m h_m^1                                      (B, H)
    c^{i+1} = a_c^{i+1} g^i(c^i) + sum_m a_m^{i+1} p_m h_m^{i+1}         (B, H)  eq. 1
    logits  = W c^L + b                                                  (B, C)
with f, g = Linear -> ReLU -> Dropout, learned scalars a (init 1) and p_m = 1 if modality m
is present in the row else 0 (an absent branch adds nothing to the central sum).

The paper trains with L = L_central + sum_m lambda_m L_m (auxiliary per-branch losses). This
head returns only the central logits; ``aux_heads=True`` adds per-branch classifiers whose
logits explain() returns as "branch_logits" (B, M, C) for a trainer that wants the auxiliary
losses (they get no gradient from the central logits alone, hence off by default).

explain(): {"alpha_modal": (L, M) a_m^i, "alpha_central": (L-1,) a_c^i[, "branch_logits"]}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import present_mask
from train_heads.fusion.base import FusionHead, register_fusion


def _layer(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout))


@register_fusion
class CentralNetHead(FusionHead):
    name = "centralnet"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 hidden: int = 512, layers: int = 2, dropout: float = 0.3, aux_heads: bool = False) -> None:
        super().__init__(dims, num_classes, token_dims)
        if layers < 1:
            raise ValueError(f"centralnet: layers={layers}; need at least 1")
        self.branches = nn.ModuleDict({
            m: nn.ModuleList(_layer(d if i == 0 else hidden, hidden, dropout) for i in range(layers))
            for m, d in dims.items()})
        self.central = nn.ModuleList(_layer(hidden, hidden, dropout) for _ in range(layers - 1))  # g^i
        self.alpha_modal = nn.Parameter(torch.ones(layers, len(dims)))  # a_m^i
        self.alpha_central = nn.Parameter(torch.ones(layers - 1))  # a_c^i for i >= 2
        self.clf = nn.Linear(hidden, num_classes)
        self.aux = nn.ModuleDict({m: nn.Linear(hidden, num_classes) for m in dims}) if aux_heads else None
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        present = present_mask(feats, self.modalities).float()  # (B, M)
        hs = [feats[m] for m in self.modalities]  # per-modality state, (B, D_m) then (B, H)
        c = None
        for i in range(len(self.alpha_modal)):
            hs = [self.branches[m][i](h) for m, h in zip(self.modalities, hs)]  # M x (B, H)
            fused = sum(self.alpha_modal[i, j] * present[:, j:j + 1] * h for j, h in enumerate(hs))
            c = fused if c is None else self.alpha_central[i - 1] * self.central[i - 1](c) + fused  # (B, H)
        self._last = {"alpha_modal": self.alpha_modal.detach(), "alpha_central": self.alpha_central.detach()}
        if self.aux is not None:
            branch = [self.aux[m](h) for m, h in zip(self.modalities, hs)]  # M x (B, C)
            self._last["branch_logits"] = torch.stack(branch, 1)  # (B, M, C), keeps the graph
        return self.clf(c)  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
