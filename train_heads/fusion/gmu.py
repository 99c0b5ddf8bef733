"""Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for Information
Fusion", arXiv:1702.01992, Sec. 3).

Two modalities, one tied gate (the paper's bimodal GMU):
    h_1 = tanh(W_1 x_1),  h_2 = tanh(W_2 x_2)           (B, H)
    z   = sigmoid(W_z [x_1; x_2])                        (B, H)
    h   = z * h_1 + (1 - z) * h_2                        (B, H)
where modality 1 is the FIRST in sorted order (for {"image", "text"}: z weighs the image).

N modalities, one gate per modality (the paper's general form, same section):
    h_i = tanh(W_i x_i),  z_i = sigmoid(W_zi [x_1; ...; x_N]),  h = sum_i z_i * h_i
used for > 2 modalities or ``gate="per_modality"``; ``gate_norm="softmax"`` instead
normalises the N gates of each hidden unit to sum to 1 (a convex mix, like the tied gate).
Then dropout and ``classifier`` ("linear" default, "mlp" or "maxout": the paper stacks
a MaxoutMLP on h).

Missing modalities: a tied gate is forced to 0/1 so an absent modality gets weight 0 (left
as learned when both are absent); per-modality gates of absent modalities are zeroed
(softmax: renormalised over the present ones).

explain(): {"gates": (B, H) z for the tied gate, (B, M, H) for per-modality gates;
            "gate_mean": its mean over hidden units, (B,) or (B, M)}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import make_classifier, masked_softmax, present_mask
from train_heads.fusion.base import FusionHead, register_fusion


@register_fusion
class GMUHead(FusionHead):
    name = "gmu"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 hidden: int = 512, gate: str = "auto", gate_norm: str = "sigmoid", dropout: float = 0.3,
                 classifier: str = "linear", clf_hidden: int = 512) -> None:
        super().__init__(dims, num_classes, token_dims)
        if gate == "auto":
            gate = "tied" if len(dims) == 2 else "per_modality"
        if gate not in ("tied", "per_modality") or (gate == "tied" and len(dims) != 2):
            raise ValueError(f"gmu: gate={gate!r} invalid for {len(dims)} modalities; use 'auto', "
                             f"'per_modality' or ('tied' with exactly 2 modalities)")
        if gate_norm not in ("sigmoid", "softmax"):
            raise ValueError(f"gmu: gate_norm={gate_norm!r}; choose from ['sigmoid', 'softmax']")
        self.tied, self.gate_norm, self.hidden = gate == "tied", gate_norm, hidden
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items()})  # W_i
        n_gates = 1 if self.tied else len(dims)
        self.gate = nn.Linear(sum(dims.values()), n_gates * hidden)  # W_z (or stacked W_zi)
        self.drop = nn.Dropout(dropout)
        self.head = make_classifier(classifier, hidden, clf_hidden, num_classes, dropout)
        self._last: dict[str, torch.Tensor] = {}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        xs = [feats[m] for m in self.modalities]
        h = torch.stack([torch.tanh(self.proj[m](x)) for m, x in zip(self.modalities, xs)], 1)  # (B, M, H)
        g = self.gate(torch.cat(xs, -1))  # (B, n_gates * H)
        present = present_mask(feats, self.modalities)  # (B, M)
        if self.tied:
            z = torch.sigmoid(g)  # (B, H) weight of modality 1
            p1, p2 = present[:, :1], present[:, 1:]  # (B, 1)
            z = torch.where(p1 & ~p2, torch.ones_like(z), torch.where(~p1 & p2, torch.zeros_like(z), z))
            fused = z * h[:, 0] + (1 - z) * h[:, 1]  # (B, H)
        else:
            g = g.unflatten(1, (len(xs), self.hidden))  # (B, M, H)
            mask = present.unsqueeze(-1).expand_as(g)  # (B, M, H)
            if self.gate_norm == "sigmoid":
                z = torch.sigmoid(g) * mask  # absent modality -> gate 0
            else:
                z = masked_softmax(g, mask, dim=1)  # convex over the present modalities
            fused = (z * h).sum(1)  # (B, H)
        self._last = {"gates": z.detach(), "gate_mean": z.detach().mean(-1)}
        return self.head(self.drop(fused))  # (B, C)

    def explain(self) -> dict[str, torch.Tensor]:
        return dict(self._last)
