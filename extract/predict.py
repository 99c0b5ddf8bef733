"""Predict genres for new posters/plots with a trained head and the encoders its caches name.

The run's head.pt records, per modality, the cache it was trained on; each cache records
its encoder, weights (name or file hash), options and fine-tuned state dict. Prediction
rebuilds exactly those encoders and refuses to go on when the weights it finds are not
the ones the cache was made with.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cache.store import open_info
from extract.encoders import Encoder, create_encoder
from train_heads.fusion import create_fusion


@dataclass
class Item:
    id: str
    image: Path | None = None
    text: str | None = None


@dataclass
class Predictor:
    head: torch.nn.Module
    encoders: dict[str, Encoder]
    dtypes: dict[str, str]  # cache feature dtype per modality (features are rounded to it)
    use_tokens: dict[str, bool]
    label_names: list[str]
    thresholds: np.ndarray
    norm: dict[str, tuple[torch.Tensor, torch.Tensor]]  # train-split feature statistics

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu") -> "Predictor":
        run = Path(run)
        if not (run / "head.pt").is_file():
            raise FileNotFoundError(f"{run} has no head.pt; give a run folder written by train-head")
        ck = torch.load(run / "head.pt", map_location="cpu", weights_only=False)
        encoders, dtypes, use_tokens = {}, {}, {}
        for m, src in ck["sources"].items():
            info = open_info(src["path"])
            encoders[m] = _rebuild_encoder(info.path, info.attrs, torch.device(device))
            dtypes[m] = info.dtype
            use_tokens[m] = bool(src.get("tokens_used"))
        head = create_fusion(ck["fusion"], ck["dims"], len(ck["label_names"]),
                             token_dims=ck["token_dims"] or None, **ck["fusion_kw"])
        head.load_state_dict(ck["state_dict"])
        head.eval()
        return cls(head, encoders, dtypes, use_tokens, ck["label_names"], np.asarray(ck["thresholds"]),
                   ck.get("norm", {}))

    @torch.no_grad()
    def predict(self, items: list[Item]) -> np.ndarray:
        """(N, C) probabilities; a modality an item lacks is masked like a missing poster."""
        feats: dict[str, torch.Tensor] = {}
        for m, enc in self.encoders.items():
            raws = [self._raw(it, enc.modality) for it in items]
            ok = torch.tensor([r is not None for r in raws])
            x = torch.zeros(len(items), enc.dim)
            if ok.any():
                with torch.inference_mode():
                    out = enc.encode(enc.collate([enc.preprocess(r) for r in raws if r is not None]),
                                     tokens=self.use_tokens[m])
                # Round to the cache dtype: the head was trained on those values.
                x[ok] = out.features.float().cpu().to(getattr(torch, self.dtypes[m])).float()
                if m in self.norm:  # the head saw z-scored features
                    mean, std = self.norm[m]
                    x[ok] = (x[ok] - mean) / std
                if self.use_tokens[m]:
                    tok = torch.zeros(len(items), *out.tokens.shape[1:])
                    mask = torch.zeros(len(items), out.tokens.shape[1], dtype=torch.bool)
                    tok[ok], mask[ok] = out.tokens.float().cpu(), out.token_mask.cpu()
                    feats[f"{m}.tokens"], feats[f"{m}.token_mask"] = tok, mask
            feats[m], feats[f"{m}.present"] = x, ok
        return torch.sigmoid(self.head(feats)).numpy()

    @staticmethod
    def _raw(item: Item, modality: str) -> Any:
        if modality == "text":
            return item.text if item.text and item.text.strip() else None
        if item.image is None:
            return None
        try:
            with Image.open(item.image) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise FileNotFoundError(f"poster {item.image} does not exist") from None
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"poster {item.image} cannot be decoded ({e})") from None


def _rebuild_encoder(path: Path, attrs: dict[str, Any], device: torch.device) -> Encoder:
    cfg = attrs["config"]
    enc = create_encoder(attrs["encoder"], weights=cfg.get("weights"), options=attrs.get("options"),
                         state_dict=cfg.get("state_dict"))
    if enc.needs_fit:
        with h5py.File(path, "r") as f:
            if "extra_state" not in f:
                raise ValueError(f"{path} has no fitted state for encoder {attrs['encoder']!r}; re-extract it")
            enc.load_extra_state(f["extra_state"][...].tobytes())
    try:
        enc.build(device)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load encoder {attrs['encoder']!r} with weights {attrs['weights']!r} "
                         f"recorded in {path.name}: {e}") from None
    if enc.weights_tag() != attrs["weights"]:
        raise ValueError(f"encoder {attrs['encoder']!r}: cache {path.name} was made with weights "
                         f"{attrs['weights']!r} but {enc.weights_tag()!r} is what loads here")
    return enc
