"""Unimodal logistic-regression baseline: logits = W x_m + b on one modality.

The simplest probe of how linearly separable the genres are in one encoder's features
(the GMU paper's single-modality "Logistic" rows; Arevalo et al. 2017, arXiv:1702.01992).
Other modalities are ignored; rows where the modality is absent are zeros, so they get b.

``solver`` picks how train.py fits it:
    lbfgs  (default) full-batch L-BFGS (strong Wolfe line search) on the loss plus sklearn's L2,
           ||W||^2 / (2 C n K) for n train rows and K genres: with a loss that is the mean
           over the n x K elements this is, per genre, sklearn LogisticRegression(C=C)'s
           objective divided by n K (the bias is not penalised, as in sklearn). One "epoch"
           is ``train.LBFGS_ITERS_PER_EPOCH`` iterations; early stopping on dev macro-F1 as usual.
    adamw  mini-batch AdamW like every other head (--lr, --batch-size, --weight-decay apply).
L-BFGS is the default because it fits a logistic regression whatever the feature scale: on
raw TF-IDF features AdamW at lr 1e-3 stops far short (test macro-F1 0.28 vs 0.38 for
L-BFGS and for sklearn's LogisticRegression on the real poster subset), and on z-scored
MiniLM / EfficientNet features it is as good as AdamW and faster (bench/head_speed.py C).
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion._blocks import UnimodalHead
from train_heads.fusion.base import register_fusion

SOLVERS = ("adamw", "lbfgs")


@register_fusion
class LinearHead(UnimodalHead):
    name = "linear"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 modality: str | None = None, solver: str = "lbfgs", C: float | None = None) -> None:
        super().__init__(dims, num_classes, token_dims, modality)
        if solver not in SOLVERS:
            raise ValueError(f"linear: solver={solver!r}; choose from {list(SOLVERS)}")
        if C is not None and (solver != "lbfgs" or not C > 0):
            raise ValueError(f"linear: C={C} needs solver=lbfgs and C > 0 (AdamW uses --weight-decay)")
        self.solver = solver
        self.C = 1.0 if C is None else float(C)  # sklearn's default inverse L2 strength
        self.net = nn.Linear(self.d_in, num_classes)  # (B, D_m) -> (B, C)

    def l2_penalty(self, n_train: int) -> torch.Tensor:
        """sklearn's 0.5 ||W||^2 / C, scaled by 1 / (n K) like the element-mean loss."""
        return self.net.weight.pow(2).sum() / (2.0 * self.C * n_train * self.num_classes)
