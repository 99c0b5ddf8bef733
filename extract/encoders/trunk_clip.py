"""Block view of the open_clip towers (`clip-image`, `clip-text`; Radford et al. 2021): blocks =
the residual attention blocks of the tower's transformer (`transformer.resblocks`).

- image (ViT): stem = patch conv + class/positional embeddings + ln_pre; tail = ln_post and
  the projection `proj`; pooling as VisionTransformer._pool (class token or patch mean,
  ln_post before or after pooling as the model is configured). Every token is real.
- text (the standard CLIP text tower, inline in the model): stem = token + positional
  embeddings; tail = ln_final and text_projection; every block gets the model's causal
  mask; the feature is the state at the EOT token (pool_type argmax: the highest id of
  the sequence) projected. The state's mask covers SOT..EOT, so the pooled position is the
  last real token, also for a state read back from a cache.

Pooling ends with the encoder's optional L2 normalisation, so `trunk(batch)` equals
`enc.encode(batch).features`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from extract.encoders.trunk import State, Trunk


class _Params(nn.Module):
    """Holds loose nn.Parameters of a model (class/positional embedding, projection) as a module
    of the stem or tail, so freezing sees them; the very same tensor objects, not copies."""

    def __init__(self, **params: nn.Parameter | None) -> None:
        super().__init__()
        for name, p in params.items():
            if isinstance(p, nn.Parameter):
                self.register_parameter(name, p)
            else:
                setattr(self, name, p)  # None, or a module (an nn.Linear projection)


def _run_block(blk: nn.Module, x: torch.Tensor, batch_first: bool, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """One resblock on an NLD state; open_clip towers built with batch_first=False want LND."""
    if batch_first:
        return blk(x, attn_mask=attn_mask)
    return blk(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)


class ClipImageTrunk(Trunk):
    def __init__(self, visual: nn.Module, normalize: bool) -> None:
        if not hasattr(visual, "transformer") or not hasattr(visual, "class_embedding"):
            raise ValueError(f"clip-image: {type(visual).__name__} is not a ViT; only open_clip ViT towers "
                             f"can be fine-tuned block by block")
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError("clip-image: towers with attentional pooling cannot be fine-tuned block by block")
        stem = [visual.conv1, _Params(class_embedding=visual.class_embedding,
                                      positional_embedding=visual.positional_embedding),
                visual.patch_dropout, visual.ln_pre]
        super().__init__(stem, list(visual.transformer.resblocks), [visual.ln_post, _Params(proj=visual.proj)])
        self.batch_first = getattr(visual.transformer, "batch_first", True)
        self.pool_type = visual.pool_type
        self.final_ln_after_pool = bool(getattr(visual, "final_ln_after_pool", False))
        self.normalize = normalize

    def embed(self, batch: Any) -> State:
        conv, emb, patch_dropout, ln_pre = self.stem
        x = conv(batch)  # (B, width, grid, grid)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, grid*grid, width)
        cls = emb.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + emb.positional_embedding.to(x.dtype)  # (B, 1+grid*grid, width)
        x = ln_pre(patch_dropout(x))
        return {"h": x, "mask": torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)}

    def block(self, i: int, state: State) -> State:
        return {"h": _run_block(self.blocks[i], state["h"], self.batch_first, None), "mask": state["mask"]}

    def _global_pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "avg":
            return x[:, 1:].mean(dim=1)
        if self.pool_type == "tok":
            return x[:, 0]
        return x

    def pool(self, state: State) -> torch.Tensor:
        ln_post, proj = self.tail[0], self.tail[1].proj
        x = state["h"]
        pooled = ln_post(self._global_pool(x)) if self.final_ln_after_pool else self._global_pool(ln_post(x))
        if proj is not None:
            pooled = pooled @ proj  # (B, embed_dim)
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


class ClipTextTrunk(Trunk):
    def __init__(self, model: nn.Module, normalize: bool) -> None:
        if getattr(model, "text", None) is not None or not hasattr(model, "token_embedding"):
            raise ValueError(f"clip-text: {type(model).__name__} keeps its text tower in a separate module; "
                             f"only the standard CLIP text tower can be fine-tuned block by block")
        if model.text_pool_type != "argmax":
            raise ValueError(f"clip-text: text pool type {model.text_pool_type!r} cannot be fine-tuned block "
                             f"by block (only CLIP's 'argmax', the EOT token)")
        stem = [model.token_embedding, _Params(positional_embedding=model.positional_embedding)]
        super().__init__(stem, list(model.transformer.resblocks),
                         [model.ln_final, _Params(text_projection=model.text_projection)])
        self.batch_first = getattr(model.transformer, "batch_first", True)
        self.cast_dtype = model.transformer.get_cast_dtype()
        self.register_buffer("attn_mask", model.attn_mask, persistent=False)  # causal (L, L)
        self.normalize = normalize

    def embed(self, batch: Any) -> State:
        ids = batch["ids"] if isinstance(batch, dict) else batch  # (B, context)
        x = self.stem[0](ids).to(self.cast_dtype) + self.stem[1].positional_embedding.to(self.cast_dtype)
        pos = torch.arange(ids.shape[1], device=ids.device)
        mask = pos.unsqueeze(0) <= ids.argmax(dim=-1, keepdim=True)  # (B, context): SOT..EOT
        return {"h": x, "mask": mask}

    def block(self, i: int, state: State) -> State:
        mask = self.attn_mask.to(state["h"].device) if self.attn_mask is not None else None
        return {"h": _run_block(self.blocks[i], state["h"], self.batch_first, mask), "mask": state["mask"]}

    def pool(self, state: State) -> torch.Tensor:
        x = self.tail[0](state["h"])  # ln_final
        eot = state["mask"].long().sum(dim=1).clamp(min=1) - 1  # last real token = EOT
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]  # (B, width)
        proj = self.tail[1].text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if self.normalize else pooled
