"""A deterministic, slow-on-demand image encoder for cache/resume tests (registered on import)."""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from extract.encoders.base import EncodeOutput, Encoder, register_encoder


@register_encoder
class ToyImage(Encoder):
    name = "toy-image"
    modality = "image"
    defaults = {"size": 16, "sleep": 0.0}

    @property
    def dim(self) -> int:
        return 3 * 4 * 4

    def load(self, device: torch.device) -> None:
        self.device = device

    def preprocess(self, raw):  # noqa: ANN001
        im = raw.resize((self.options["size"], self.options["size"]))
        return torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 255  # (3, H, W)

    def encode(self, batch: torch.Tensor, tokens: bool = False) -> EncodeOutput:
        time.sleep(float(os.environ.get("TOY_SLEEP", self.options["sleep"])))
        pooled = torch.nn.functional.adaptive_avg_pool2d(batch, 4)  # (B, 3, 4, 4)
        feats = pooled.flatten(1) + 0.001 * batch.mean(dim=(1, 2, 3), keepdim=False)[:, None]
        tok = pooled.flatten(2).transpose(1, 2) if tokens else None  # (B, 16, 3)
        mask = torch.ones(tok.shape[:2], dtype=torch.bool) if tokens else None
        return EncodeOutput(feats, tok, mask)

    def preprocess_info(self) -> dict:
        return {"resize": self.options["size"]}
