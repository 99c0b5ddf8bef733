"""Multi-label losses on logits and the `LOSSES` registry.

Every loss: ``forward(logits (B, C), targets (B, C) float in [0, 1]) -> scalar``, the
mean over all B*C (sample, label) terms. Each label is treated as its own binary
problem with p = sigmoid(logit); log-probabilities come from ``F.logsigmoid`` so large
logits never produce log(0).

    bce    binary cross-entropy
    wbce   BCE with a per-class positive weight neg/pos from the train labels
           (see `pos_weight_from_labels`); the trainer passes it in
    focal  focal loss, Lin et al. 2017 (arXiv:1708.02002), eq. (5)
    asl    asymmetric loss, Ridnik et al. 2021 (arXiv:2009.14119), eqs. (4)-(7)

Label smoothing (option of every loss, ``label_smoothing=eps``): each label is a
two-class problem, so the uniform smoothing of Szegedy et al. 2016 (arXiv:1512.00567,
sec. 7), y -> (1 - eps) * y + eps / K with K = 2, gives y -> y * (1 - eps) + eps / 2:
a positive becomes 1 - eps/2 and a negative eps/2, independently per label. (Smoothing
over the C genres instead would make the target depend on how many genres a film has.)

Soft targets: every loss here is written as y * L_pos + (1 - y) * L_neg, the linear
interpolation of its positive- and negative-label terms, exactly as BCE treats a soft y.
For hard 0/1 targets this is the published loss.
"""
from __future__ import annotations

import inspect
import math
import typing
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MultiLabelLoss(nn.Module):
    """Base: validates and smooths targets, then averages the per-element loss."""

    name: ClassVar[str]
    uses_pos_weight: ClassVar[bool] = False  # True: create_loss must be given pos_weight
    option_help: ClassVar[dict[str, str]] = {}  # option -> its valid values, for error messages

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def smooth(self, targets: torch.Tensor) -> torch.Tensor:
        """y -> y * (1 - eps) + eps / 2 (per-label two-class smoothing, see module doc)."""
        eps = self.label_smoothing
        return targets * (1.0 - eps) + eps / 2.0 if eps > 0 else targets

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape or logits.dim() != 2:
            raise ValueError(f"loss {self.name!r} needs logits and targets of the same shape (B, C), "
                             f"got {tuple(logits.shape)} and {tuple(targets.shape)}")
        y = self.smooth(targets.to(logits.dtype))  # (B, C)
        return self.elementwise(logits, y).mean()

    def elementwise(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-element loss (B, C); subclasses implement it."""
        raise NotImplementedError


LOSSES: dict[str, type[MultiLabelLoss]] = {}


def register_loss(cls: type[MultiLabelLoss]) -> type[MultiLabelLoss]:
    LOSSES[cls.name] = cls
    return cls


@register_loss
class BCELoss(MultiLabelLoss):
    """Binary cross-entropy: -[y log p + (1 - y) log(1 - p)], p = sigmoid(x)."""

    name = "bce"

    def elementwise(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y, reduction="none")


@register_loss
class WeightedBCELoss(MultiLabelLoss):
    """BCE with a per-class weight w_c on the positive term:
    -[w_c * y log p + (1 - y) log(1 - p)], w_c = #neg_c / #pos_c on the train labels.
    Up-weights rare genres so each class's positives and negatives weigh about the same."""

    name = "wbce"
    uses_pos_weight = True

    def __init__(self, pos_weight: torch.Tensor, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        pos_weight = torch.as_tensor(pos_weight, dtype=torch.float32)
        if pos_weight.dim() != 1 or bool((pos_weight < 0).any()):
            raise ValueError(f"pos_weight must be a non-negative (C,) vector, got shape "
                             f"{tuple(pos_weight.shape)}; compute it with pos_weight_from_labels")
        self.register_buffer("pos_weight", pos_weight)  # (C,), follows .to(device)

    def elementwise(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != self.pos_weight.numel():
            raise ValueError(f"pos_weight has {self.pos_weight.numel()} classes but logits have "
                             f"{logits.shape[1]}")
        return F.binary_cross_entropy_with_logits(
            logits, y, pos_weight=self.pos_weight.to(logits.dtype), reduction="none")


@register_loss
class FocalLoss(MultiLabelLoss):
    """Focal loss, Lin et al. 2017 (arXiv:1708.02002), eq. (5):

        FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)

    with p_t = p for a positive and 1 - p for a negative, alpha_t = alpha for a positive
    and 1 - alpha for a negative. Per element (soft y, see module doc):

        -[y * alpha (1 - p)^gamma log p + (1 - y) * (1 - alpha) p^gamma log(1 - p)]

    alpha=None (or negative) disables the alpha weighting (alpha_t = 1, eq. (4)).
    gamma=0 with alpha disabled is BCE.
    """

    name = "focal"
    option_help = {"alpha": "a number in [0, 1]; null or negative: no alpha weighting", "gamma": "a number >= 0"}

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        if alpha is not None and alpha > 1:
            raise ValueError(f"focal alpha must be in [0, 1] (or None/negative to disable), got {alpha}")
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.alpha = None if alpha is None or alpha < 0 else float(alpha)
        self.gamma = float(gamma)

    def elementwise(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log(1 - p); (B, C)
        p, q = log_p.exp(), log_q.exp()
        pos = (q ** self.gamma) * log_p  # (1 - p)^gamma log p
        neg = (p ** self.gamma) * log_q  # p^gamma log(1 - p)
        if self.alpha is not None:
            pos, neg = self.alpha * pos, (1.0 - self.alpha) * neg
        return -(y * pos + (1.0 - y) * neg)


@register_loss
class AsymmetricLoss(MultiLabelLoss):
    """Asymmetric loss (ASL), Ridnik et al. 2021 (arXiv:2009.14119), eqs. (4)-(7):

        L+ = (1 - p)^gamma_pos log(p)
        L- = p_m^gamma_neg log(1 - p_m),   p_m = max(p - m, 0)   (probability shifting, eq. 6)
        loss = -[y L+ + (1 - y) L-]

    gamma_neg > gamma_pos focuses less on the many easy negatives; the margin m = ``clip``
    discards negatives with p < m entirely (their loss and gradient are 0). Both logs are
    clamped at log(eps), as in the paper's reference implementation, so a hopeless
    prediction has bounded loss (and zero gradient). clip=0 and gamma_pos = gamma_neg = 0
    give BCE (up to the eps clamp).
    """

    name = "asl"
    option_help = {"gamma_pos": "a number >= 0", "gamma_neg": "a number >= 0", "clip": "a number in [0, 1)",
                   "eps": "a number in (0, 1)"}

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 eps: float = 1e-8, label_smoothing: float = 0.0) -> None:
        super().__init__(label_smoothing)
        if gamma_pos < 0 or gamma_neg < 0:
            raise ValueError(f"asl gammas must be >= 0, got gamma_pos={gamma_pos}, gamma_neg={gamma_neg}")
        if not 0.0 <= clip < 1.0:
            raise ValueError(f"asl clip must be in [0, 1), got {clip}")
        if not 0.0 < eps < 1.0:
            raise ValueError(f"asl eps must be in (0, 1), got {eps}")
        self.gamma_pos, self.gamma_neg = float(gamma_pos), float(gamma_neg)
        self.clip, self.eps = float(clip), float(eps)

    def elementwise(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_floor = math.log(self.eps)
        log_p = F.logsigmoid(logits).clamp(min=log_floor)  # log p, (B, C)
        p = torch.sigmoid(logits)
        if self.clip > 0:
            p_m = (p - self.clip).clamp(min=0.0)  # shifted probability, eq. (6)
            # 1 - p_m >= clip, so this log is finite without logsigmoid.
            log_q = torch.log1p(-p_m).clamp(min=log_floor)
        else:
            p_m = p
            log_q = F.logsigmoid(-logits).clamp(min=log_floor)  # log(1 - p)
        pos = ((1.0 - p) ** self.gamma_pos) * log_p
        neg = (p_m ** self.gamma_neg) * log_q
        return -(y * pos + (1.0 - y) * neg)


def pos_weight_from_labels(Y: np.ndarray | torch.Tensor, max_weight: float | None = None) -> torch.Tensor:
    """Per-class positive weight #neg / #pos from a (N, C) 0/1 label matrix (the TRAIN split).

    Classes with no positives (the ratio is undefined) or no negatives (the ratio is 0,
    which would switch the positive term off) get weight 1.0, i.e. plain BCE for that
    class. ``max_weight`` optionally caps very rare classes. Returns float32 (C,).
    """
    Y = torch.as_tensor(np.asarray(Y) if not isinstance(Y, torch.Tensor) else Y)
    if Y.dim() != 2:
        raise ValueError(f"labels must be a (N, C) matrix, got shape {tuple(Y.shape)}")
    Y = Y.to(torch.float64)
    pos = Y.sum(0)  # (C,)
    neg = Y.shape[0] - pos  # (C,)
    defined = (pos > 0) & (neg > 0)
    w = torch.where(defined, neg / pos.clamp(min=1), torch.ones_like(pos))
    if max_weight is not None:
        w = w.clamp(max=max_weight)
    return w.to(torch.float32)


def list_losses() -> list[str]:
    return sorted(LOSSES)


def needs_pos_weight(name: str) -> bool:
    """True if loss ``name`` must be given ``pos_weight`` (compute it on the train labels)."""
    return _loss_class(name).uses_pos_weight


def create_loss(name: str, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                **kw: Any) -> MultiLabelLoss:
    """Build loss ``name``; ``kw`` are its options (focal: alpha, gamma; asl: gamma_pos,
    gamma_neg, clip, eps). ``pos_weight`` is required by, and only accepted by, losses with
    ``uses_pos_weight`` (see `needs_pos_weight`)."""
    cls = _loss_class(name)
    check_loss_options(name, kw)
    if cls.uses_pos_weight:
        if pos_weight is None:
            raise ValueError(f"loss {name!r} needs pos_weight; compute it with "
                             f"pos_weight_from_labels(train labels)")
        return cls(pos_weight=pos_weight, label_smoothing=label_smoothing, **kw)
    if pos_weight is not None:
        raise ValueError(f"loss {name!r} does not use pos_weight; pass it only to "
                         f"{sorted(n for n, c in LOSSES.items() if c.uses_pos_weight)}")
    return cls(label_smoothing=label_smoothing, **kw)


def loss_options(name: str) -> dict[str, inspect.Parameter]:
    """Loss ``name``'s own options (``--loss-opt`` keys): its constructor's parameters other
    than pos_weight (computed by the trainer) and label_smoothing (a HeadConfig field)."""
    params = inspect.signature(_loss_class(name).__init__).parameters
    return {k: p for k, p in params.items() if k not in ("self", "pos_weight", "label_smoothing")}


def _describe_options(name: str) -> str:
    opts = loss_options(name)
    if not opts:
        return f"loss {name!r} takes no options"
    helps = _loss_class(name).option_help
    return f"loss {name!r} options: " + ", ".join(
        f"{k} ({helps.get(k, 'a number')}; default {p.default})" for k, p in opts.items())


def check_loss_options(name: str, kw: dict[str, Any]) -> None:
    """Refuse loss options before any training: unknown keys, values that are not numbers
    (the options are all numbers, some may also be None, from the constructor's type hints)
    and out-of-range values (the constructor's own checks, run on a throwaway instance, so
    the rules live in one place). One line that also lists the valid options."""
    cls = _loss_class(name)
    opts = loss_options(name)
    unknown = sorted(set(kw) - set(opts))
    if unknown:
        raise ValueError(f"loss {name!r} has no option(s) {unknown}; {_describe_options(name)}")
    hints = typing.get_type_hints(cls.__init__)
    for k, v in kw.items():
        allowed = typing.get_args(hints.get(k)) or (hints.get(k),)
        if v is None and type(None) in allowed:
            continue
        # bool is an int subclass, but `gamma=true` is a typo, not a number
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"loss {name!r} option {k}={v!r} is not a finite number; {_describe_options(name)}")
    try:  # the range checks (gamma >= 0, alpha <= 1, clip in [0, 1) ...) are the constructor's
        cls(**({"pos_weight": torch.ones(1)} if cls.uses_pos_weight else {}), **kw)
    except ValueError as e:
        raise ValueError(f"{e}; {_describe_options(name)}") from None


def _loss_class(name: str) -> type[MultiLabelLoss]:
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; choose from {list_losses()}")
    return LOSSES[name]
