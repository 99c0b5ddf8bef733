"""The fusion-head interface and the `FUSIONS` registry.

Every head: ``forward(feats: dict[str, Tensor]) -> Tensor`` returning logits (B, C).

``feats`` holds, for each modality name ``m`` (e.g. "image", "text"):
    feats[m]                 (B, D_m)   pooled features (rows of missing items are zeros)
    feats[f"{m}.present"]    (B,) bool  False where the item had no poster / empty text
and, only when the cache has token features and the head sets ``uses_tokens``:
    feats[f"{m}.tokens"]     (B, T_m, Dt_m)
    feats[f"{m}.token_mask"] (B, T_m) bool, True = real token
Heads that attend over tokens call ``token_sequence(feats, m)``, which falls back to the
pooled vector as a one-token sequence when no tokens are given.

Heads with interpretable internals (GMU gates, late-fusion alpha, attention weights)
keep them from the last forward and return them from ``explain()``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class FusionHead(nn.Module):
    name: ClassVar[str]
    uses_tokens: ClassVar[bool] = False  # True: the head attends over token sequences
    min_modalities: ClassVar[int] = 2  # unimodal heads set 1

    def __init__(self, dims: dict[str, int], num_classes: int,
                 token_dims: dict[str, int] | None = None) -> None:
        super().__init__()
        if len(dims) < self.min_modalities:
            raise ValueError(f"fusion {self.name!r} needs at least {self.min_modalities} modalities, "
                             f"got {sorted(dims)}")
        self.dims = dict(dims)
        self.modalities = sorted(dims)  # fixed order, so results do not depend on dict order
        self.num_classes = num_classes
        # Token width per modality; defaults to the pooled width (pooled-as-one-token fallback).
        self.token_dims = {m: (token_dims or {}).get(m, d) for m, d in dims.items()}

    def explain(self) -> dict[str, torch.Tensor]:
        """Interpretable internals from the last forward (empty for heads without any)."""
        return {}


def token_sequence(feats: dict[str, torch.Tensor], m: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) tokens and (B, T) mask of modality m; pooled vector as one token if no tokens."""
    if f"{m}.tokens" in feats:
        return feats[f"{m}.tokens"], feats[f"{m}.token_mask"]
    x = feats[m].unsqueeze(1)  # (B, 1, D)
    return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


FUSIONS: dict[str, type[FusionHead]] = {}


def register_fusion(cls: type[FusionHead]) -> type[FusionHead]:
    FUSIONS[cls.name] = cls
    return cls


def list_fusions() -> list[str]:
    _import_all()
    return sorted(FUSIONS)


def create_fusion(name: str, dims: dict[str, int], num_classes: int,
                  token_dims: dict[str, int] | None = None, **kw: Any) -> FusionHead:
    _import_all()
    if name not in FUSIONS:
        raise ValueError(f"Unknown fusion {name!r}; choose from {sorted(FUSIONS)}")
    return FUSIONS[name](dims, num_classes, token_dims=token_dims, **kw)


def _import_all() -> None:
    import train_heads.fusion  # noqa: F401
