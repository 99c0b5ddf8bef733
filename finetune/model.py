"""The joint model: one trunk per backbone + one fusion head, trained together.

forward(rows, raw) builds the head's input dict exactly as cached features would give it
(train_heads/fusion/base.py: feats[m] (B, D) with zero rows where absent, feats[m.present]),
from each backbone's input mode (finetune/data.py): cached features, a cached prefix run
through the trainable blocks, or raw input run through the whole trunk with the frozen part
under no_grad. Frozen modules stay in eval mode in training (frozen BatchNorm statistics).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from extract.encoders.trunk import State
from finetune.data import Raw, Stored
from finetune.freeze import BlockPlan, frozen_modules
from train_heads.fusion.base import FusionHead


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """An encoder batch (tensor or dict of tensors) on `device`."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    return batch


class JointModel(nn.Module):
    def __init__(self, plans: list[BlockPlan], head: FusionHead, stored: dict[str, Stored],
                 grad_checkpointing: bool = False, channels_last: bool = False) -> None:
        super().__init__()
        self.plans = {p.name: p for p in plans}
        self.trunks = nn.ModuleDict({p.name: p.trunk for p in plans})
        self.head = head
        self.stored = stored  # backbone -> inputs read once (modes features / prefix); on the device
        self.grad_checkpointing = grad_checkpointing
        self.channels_last = channels_last
        self.n_units = {p.name: len(p.units) for p in plans}  # units training now (gradual unfreezing)
        # backbone -> (mean, std) of its pretrained features on train, fixed (--standardize; set_norm)
        self.norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def train(self, mode: bool = True) -> "JointModel":
        super().train(mode)
        if mode:  # frozen parts keep their pretrained BatchNorm statistics and no dropout
            for p in self.plans.values():
                for m in frozen_modules(p, self.n_units[p.name]):
                    m.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def forward(self, rows: torch.Tensor, raw: Raw) -> torch.Tensor:
        return self.head(self.features(rows, raw))

    def features(self, rows: torch.Tensor, raw: Raw, normalize: bool = True) -> dict[str, torch.Tensor]:
        """The head's input dict for these rows (B,); z-scored by `norm` unless normalize=False
        (the raw backbone features, as a cache stores them)."""
        dev = self.device
        feats: dict[str, torch.Tensor] = {}
        for name, plan in self.plans.items():
            if plan.mode == "features":
                s = self.stored[name]
                feats[name], feats[f"{name}.present"] = self._z(name, s.features[rows], s.present[rows], normalize)
                continue
            if plan.mode == "prefix":
                s = self.stored[name]
                present = s.present[rows]
                keep = rows[present]
                state = None
                if len(keep):
                    tok, mask = s.tokens[keep], s.token_mask[keep]
                    if not plan.trunk.spatial:  # texts: cut the padding to the batch's longest, as raw batches are
                        longest = int(mask.sum(1).max())
                        tok, mask = tok[:, :longest], mask[:, :longest]
                    state = plan.trunk.from_tokens(tok, mask)
            else:
                present, batch = raw[name]
                present = present.to(dev)
                state = None
                if batch is not None:
                    batch = to_device(batch, dev, self.channels_last)
                    start = self._grad_start(plan)
                    with torch.no_grad():  # the frozen part below the first live block
                        state = plan.trunk.prefix(batch, start) if start > 0 else None
                    if state is None:  # the stem trains: embed with gradients
                        state = plan.trunk.embed(batch)
            out = torch.zeros(len(rows), plan.enc.dim, device=dev)
            if state is not None:
                start = plan.k if plan.mode == "prefix" else self._grad_start(plan)
                out[present] = self._top(plan, state, start).float()
            feats[name], feats[f"{name}.present"] = self._z(name, out, present, normalize)
        return feats

    def _z(self, name: str, x: torch.Tensor, present: torch.Tensor, normalize: bool
           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x z-scored with the backbone's fixed train statistics, absent rows kept at 0; present)."""
        if normalize and name in self.norm:
            mean, std = self.norm[name]
            x = torch.where(present[:, None], (x - mean) / std, torch.zeros((), device=x.device))
        return x, present

    def _grad_start(self, plan: BlockPlan) -> int:
        """First block a raw-mode forward runs with gradients: 0 when the stem trains now,
        else below the live blocks (gradual unfreezing); n in evaluation (all under no_grad)."""
        if not self.training:
            return plan.n
        live = self.n_units[plan.name]
        if plan.stem_trains and live == len(plan.units):
            return 0
        return plan.n - min(live, plan.top)

    def _top(self, plan: BlockPlan, state: State, start: int) -> torch.Tensor:
        """Blocks start.. then tail and pooling; with gradient checkpointing each block's
        activations are recomputed in backward instead of kept."""
        trunk = plan.trunk
        for i in range(start, trunk.n_blocks):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                state = checkpoint(trunk.block, i, state, use_reentrant=False)
            else:
                state = trunk.block(i, state)
        return trunk.pool(state)
