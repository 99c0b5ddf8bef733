"""An encoder cut into its natural blocks, for end-to-end and partial fine-tuning (finetune/).

    trunk = enc.trunk()                 # after enc.build(device); shares enc.model's parameters
    state = trunk.embed(batch)          # batch = enc.collate([...]); state = {"h": ..., ["mask": ...]}
    for i in range(k): state = trunk.block(i, state)     # the frozen prefix (cacheable)
    feats = trunk(state=state, start=k)  # blocks k.. n-1, then the tail and pooling: (B, D)

`trunk(batch)` equals `enc.encode(batch).features` (up to BatchNorm folding, ~1e-5), so a
head trained on cached features and a fine-tuned one see the same kind of input.

Blocks are what a user counts in `--unfreeze last:N` / `extract --upto last:N`: ResNet
stages (layer1..layer4), EfficientNet stage groups, BERT/MiniLM/DistilBERT layers, CLIP
residual blocks. The stem (parameters before block 0: patch/token embeddings, first conv)
trains only with `all`; the tail (parameters after the last block: final norm, head conv,
projection) trains whenever the last block does.

A state is a dict of tensors: {"h": (B, C, H, W)} for CNNs, {"h": (B, L, D), "mask": (B, L)
bool} for transformers. `to_tokens` / `from_tokens` turn a state into cache tokens (B, T, Dt)
+ mask (B, T) and back, which is how `extract --upto` stores the activations entering a block.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

State = dict[str, torch.Tensor]


def parse_blocks(spec: str, n_blocks: int, flag: str = "--unfreeze") -> int:
    """The index k of the first trainable block for `none|last:N|all` (n_blocks = none).

    `none` -> n_blocks (nothing trains), `all` -> 0 (the stem trains too; see Trunk),
    `last:N` -> n_blocks - N with 1 <= N <= n_blocks."""
    if spec == "none":
        return n_blocks
    if spec == "all":
        return 0
    head, _, num = spec.partition(":")
    if head == "last" and num.isdigit() and 1 <= int(num) <= n_blocks:
        return n_blocks - int(num)
    if head == "last" and num.isdigit():
        raise ValueError(f"{flag} {spec!r}: this encoder has {n_blocks} blocks; N must be 1..{n_blocks}")
    raise ValueError(f"{flag} {spec!r}: expected none, all or last:N (N = 1..{n_blocks} blocks)")


class Trunk(nn.Module):
    """stem -> blocks -> tail of one encoder. Subclasses implement embed, block and pool.

    `stem` and `tail` are ModuleLists holding the parameters before the first and after
    the last block (for freezing; may be empty); `blocks` holds one module per block."""

    def __init__(self, stem: list[nn.Module], blocks: list[nn.Module], tail: list[nn.Module]) -> None:
        super().__init__()
        self.stem = nn.ModuleList(stem)
        self.blocks = nn.ModuleList(blocks)
        self.tail = nn.ModuleList(tail)

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    # ---- to implement -----------------------------------------------------------------
    def embed(self, batch: Any) -> State:
        """The state entering block 0, from what the encoder's collate() returns."""
        raise NotImplementedError

    def block(self, i: int, state: State) -> State:
        raise NotImplementedError

    def pool(self, state: State) -> torch.Tensor:
        """(B, D) features from the state after the last block: tail + pooling, as encode()."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------
    def prefix(self, batch: Any, k: int) -> State:
        """The state entering block k (k = n_blocks: after every block)."""
        state = self.embed(batch)
        for i in range(k):
            state = self.block(i, state)
        return state

    def forward(self, batch: Any = None, state: State | None = None, start: int = 0) -> torch.Tensor:
        """(B, D) features: from a raw batch, or from `state` entering block `start`."""
        if state is None:
            state = self.embed(batch)
            start = 0
        for i in range(start, self.n_blocks):
            state = self.block(i, state)
        return self.pool(state)

    def to_tokens(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Cache form of a state: tokens (B, T, Dt) and mask (B, T) bool."""
        h = state["h"]
        if h.dim() == 4:  # (B, C, H, W) -> (B, H*W, C)
            tok = h.flatten(2).transpose(1, 2)
            return tok, torch.ones(tok.shape[:2], dtype=torch.bool, device=h.device)
        return h, state["mask"].bool()

    def from_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> State:
        """Inverse of to_tokens (a CNN map is square: T = H*W with H = W)."""
        if self.spatial:
            b, t, c = tokens.shape
            side = int(round(t ** 0.5))
            return {"h": tokens.transpose(1, 2).reshape(b, c, side, side).contiguous()}
        return {"h": tokens, "mask": mask}

    spatial: bool = False  # True for CNN trunks (states are (B, C, H, W) maps)
