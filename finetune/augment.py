"""Training-time augmentation: poster transforms (torchvision.transforms.v2) and token dropout.

Posters, `--augment NAME` or `--augment key=value,...` (keys below; a preset name may be
followed by overrides: `paper-000,rotate=0`):

| preset    | crop (RandomResizedCrop scale) | flip | jitter b/c/s, hue | rotate | affine translate, scale, shear |
|-----------|------|------|-------------------|--------|------------------|
| none      | -    | -    | -                 | -      | -                |
| light     | 0.8  | 0.5  | 0.1, 0            | -      | -                |
| paper-000 | 0.7  | 0.5  | 0.3, 0.15         | 20     | 0.1, 0.9-1.1, 10 |
| paper-001 | -    | 0.5  | 0.15, 0.05        | 5      | -                |

paper-000: Supkhankulov 2025, Sec. 4.2 ("RandomResizedCrop(scale=0.7-1.0), RandomHorizontalFlip(0.5),
ColorJitter(0.3, 0.3, 0.3, 0.15), RandomRotation(20), RandomAffine(translate=0.1, scale=0.9-1.1,
shear=10)"); paper-001: Hessnawi et al., Sec. 4.2 (flip 0.5, rotation +-5 degrees, brightness,
contrast, saturation +-15 %, hue +-5 %). The geometry step is the encoder's own (its resize mode
and size) unless `crop` > 0 replaces it with RandomResizedCrop to the encoder's input size;
normalisation is the encoder's. With nothing set the train transform IS the eval transform.

Texts: `--token-dropout p` replaces each real token but the first ([CLS]) and the last real
one ([SEP]) by the tokenizer's [UNK] with probability p (UNK, not [MASK]: MiniLM/DistilBERT
fine-tuning never saw [MASK] as a content token, and the `lstm` vocabulary has no [MASK]).
Randomness comes from torch's RNG (DataLoader workers are seeded per epoch by finetune), so a
seeded run draws the same augmentations every time.
"""
from __future__ import annotations

from typing import Any

import torch

from extract.encoders.torchvision_cnn import ImagePreprocess

KEYS = {"crop": 0.0, "flip": 0.0, "jitter": 0.0, "hue": 0.0, "rotate": 0.0, "translate": 0.0,
        "scale": 0.0, "shear": 0.0}
AUGMENTS: dict[str, dict[str, float]] = {
    "none": {},
    "light": {"crop": 0.8, "flip": 0.5, "jitter": 0.1},
    "paper-000": {"crop": 0.7, "flip": 0.5, "jitter": 0.3, "hue": 0.15, "rotate": 20, "translate": 0.1,
                  "scale": 0.1, "shear": 10},
    "paper-001": {"flip": 0.5, "jitter": 0.15, "hue": 0.05, "rotate": 5},
}
_LIMITS = {"crop": (0.0, 1.0), "flip": (0.0, 1.0), "jitter": (0.0, 1.0), "hue": (0.0, 0.5), "rotate": (0.0, 180.0),
           "translate": (0.0, 1.0), "scale": (0.0, 1.0), "shear": (0.0, 90.0)}


def parse_augment(text: str) -> dict[str, float]:
    """`--augment` -> {key: value} with every key of KEYS (0 = off)."""
    spec = dict(KEYS)
    for i, part in enumerate(p.strip() for p in str(text).split(",") if p.strip()):
        if "=" not in part:
            if i > 0 or part not in AUGMENTS:
                raise ValueError(f"--augment {text!r}: {part!r} is not a preset ({', '.join(AUGMENTS)}) "
                                 f"or key=value with a key of {sorted(KEYS)}")
            spec.update(AUGMENTS[part])
            continue
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in KEYS:
            raise ValueError(f"--augment {text!r}: unknown key {k!r}; keys: {sorted(KEYS)}")
        try:
            val = float(v)
        except ValueError:
            raise ValueError(f"--augment {text!r}: {k}={v!r} is not a number") from None
        lo, hi = _LIMITS[k]
        if not lo <= val <= hi:
            raise ValueError(f"--augment {text!r}: {k} must be in [{lo:g}, {hi:g}], got {val:g}")
        spec[k] = val
    return spec


def augments_input(spec: dict[str, float]) -> bool:
    """True when the train transform differs from the eval one (then no prefix can be cached)."""
    return any(spec.get(k, 0.0) for k in KEYS)


def build_image_train_transform(pre: ImagePreprocess, spec: dict[str, float]) -> Any:
    """PIL RGB poster -> normalised float tensor (3, crop, crop), augmented per spec."""
    if not augments_input(spec):
        return pre.build()
    from torchvision.transforms import v2 as T

    interp = T.InterpolationMode(pre.interpolation)
    if spec["crop"]:
        geometry: list[Any] = [T.RandomResizedCrop(pre.crop, scale=(spec["crop"], 1.0), interpolation=interp,
                                                   antialias=True)]
    else:
        geometry = [_EvalGeometry(pre)]
    ops: list[Any] = []
    if spec["flip"]:
        ops.append(T.RandomHorizontalFlip(spec["flip"]))
    if spec["jitter"] or spec["hue"]:
        j = spec["jitter"]
        ops.append(T.ColorJitter(brightness=j, contrast=j, saturation=j, hue=spec["hue"]))
    if spec["rotate"]:
        ops.append(T.RandomRotation(spec["rotate"], interpolation=interp))
    if spec["translate"] or spec["scale"] or spec["shear"]:
        s = spec["scale"]
        ops.append(T.RandomAffine(0, translate=(spec["translate"],) * 2 if spec["translate"] else None,
                                  scale=(1 - s, 1 + s) if s else None, shear=spec["shear"] or None,
                                  interpolation=interp))
    tail = [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(pre.mean), list(pre.std))]
    return T.Compose([*geometry, *ops, *tail])


class _EvalGeometry:
    """The encoder's own resize step (squash/crop/pad) as a PIL -> PIL transform (picklable)."""

    def __init__(self, pre: ImagePreprocess) -> None:
        self.pre = pre

    def __call__(self, im: Any) -> Any:
        from torchvision.transforms import v2 as T

        interp = T.InterpolationMode(self.pre.interpolation)
        if self.pre.resize_mode == "crop":
            im = T.functional.resize(im, self.pre.resize, interpolation=interp, antialias=True)
            return T.functional.center_crop(im, self.pre.crop)
        if self.pre.resize_mode == "squash":
            return T.functional.resize(im, [self.pre.crop, self.pre.crop], interpolation=interp, antialias=True)
        w, h = im.size  # pad: longest side to crop, letterboxed with the normalisation mean colour
        scale = self.pre.crop / max(w, h)
        im = T.functional.resize(im, [max(1, round(h * scale)), max(1, round(w * scale))], interpolation=interp,
                                 antialias=True)
        return _letterbox(im, self.pre.crop, tuple(int(round(m * 255)) for m in self.pre.mean))


def _letterbox(im: Any, size: int, fill: tuple[int, ...]) -> Any:
    from PIL import Image

    out = Image.new("RGB", (size, size), fill)
    out.paste(im, ((size - im.size[0]) // 2, (size - im.size[1]) // 2))
    return out


def token_dropout(input_ids: torch.Tensor, attention_mask: torch.Tensor, p: float, gen: torch.Generator,
                  replace_id: int) -> torch.Tensor:
    """input_ids with each real token but the first and the last real one replaced by replace_id
    with probability p (new tensor; p = 0 returns input_ids unchanged)."""
    if p <= 0:
        return input_ids
    mask = attention_mask.bool()
    last = mask.sum(1, keepdim=True) - 1  # (B, 1) position of the last real token ([SEP])
    pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
    inner = mask & (pos > 0) & (pos < last)
    drop = (torch.rand(input_ids.shape, generator=gen) < p) & inner
    return input_ids.masked_fill(drop, replace_id)


def describe_augment(spec: dict[str, float]) -> dict[str, float]:
    """The non-zero settings (recorded with the run)."""
    return {k: v for k, v in spec.items() if v}
