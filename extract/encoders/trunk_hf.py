"""Block view of the transformers text encoders (`bert`, `distilbert`, `minilm`): stem = the
embeddings, blocks = the transformer layers, tail = BERT's pooler (when the model has one).

Each block gets the 4-D attention mask transformers itself builds from the 2-D one
(`masking_utils.create_bidirectional_mask`), so `trunk(batch)` equals the model's own forward
and the encoder's pooling (mean over real tokens, [CLS] or the pooler; optional L2 norm).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from extract.encoders.trunk import State, Trunk


def _layers(model: nn.Module) -> nn.ModuleList:
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):  # BERT-style (bert, minilm)
        return model.encoder.layer
    if hasattr(model, "transformer") and hasattr(model.transformer, "layer"):  # DistilBERT
        return model.transformer.layer
    raise ValueError(f"{type(model).__name__}: no transformer layer list found to fine-tune")


class HFTrunk(Trunk):
    def __init__(self, model: nn.Module, pooling: str, normalize: bool) -> None:
        pooler = getattr(model, "pooler", None)
        super().__init__([model.embeddings], list(_layers(model)), [pooler] if pooler is not None else [])
        self.config = model.config
        self.pooling, self.normalize = pooling, normalize
        self._pooler = pooler

    def embed(self, batch: Any) -> State:
        return {"h": self.stem[0](input_ids=batch["input_ids"]), "mask": batch["attention_mask"].bool()}

    def block(self, i: int, state: State) -> State:
        from transformers.masking_utils import create_bidirectional_mask

        mask4 = create_bidirectional_mask(config=self.config, inputs_embeds=state["h"], attention_mask=state["mask"])
        out = self.blocks[i](state["h"], attention_mask=mask4)
        h = out[0] if isinstance(out, tuple) else out
        return {"h": h, "mask": state["mask"]}

    def pool(self, state: State) -> torch.Tensor:
        h, mask = state["h"].float(), state["mask"]
        if self.pooling == "cls":
            feats = h[:, 0]
        elif self.pooling == "pooler":
            feats = self._pooler(state["h"]).float()
        else:
            m = mask.unsqueeze(-1).to(h.dtype)  # (B, L, 1)
            feats = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(feats, dim=-1) if self.normalize else feats
