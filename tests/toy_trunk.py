"""A tiny fine-tunable image encoder for the finetune tests (registered on import): stem conv,
three conv + BatchNorm + ReLU blocks, global average pool. 16x16 posters, 16-d features, so an
epoch over the tiny data set takes milliseconds."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from extract.encoders.base import EncodeOutput, Encoder, register_encoder
from extract.encoders.trunk import State, Trunk


class _ToyTrunk(Trunk):
    spatial = True

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__([net[0]], list(net[1:]), [])

    def embed(self, batch: Any) -> State:
        return {"h": self.stem[0](batch)}

    def block(self, i: int, state: State) -> State:
        return {"h": self.blocks[i](state["h"])}

    def pool(self, state: State) -> torch.Tensor:
        return state["h"].mean(dim=(2, 3))


@register_encoder
class ToyConvNet(Encoder):
    name = "toy-convnet"
    modality = "image"
    defaults = {"size": 16}

    @property
    def dim(self) -> int:
        return 16

    def load(self, device: torch.device) -> None:
        def blk(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())

        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), blk(8, 8), blk(8, 16), blk(16, 16))
        self._load_state_dict(model)
        self.model = model.eval().to(device)
        self.device = device

    def trunk(self) -> Trunk:
        return _ToyTrunk(self.model)

    def preprocess(self, raw: Any) -> torch.Tensor:
        im = raw.resize((self.options["size"], self.options["size"]))
        return torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 255  # (3, H, W)

    @torch.no_grad()
    def encode(self, batch: torch.Tensor, tokens: bool = False) -> EncodeOutput:
        return EncodeOutput(self.trunk()(batch.to(self.device)).float().cpu())

    def preprocess_info(self) -> dict:
        return {"resize": self.options["size"]}
