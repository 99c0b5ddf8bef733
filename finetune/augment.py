"""Training-time input augmentation for fine-tuning: poster transforms and text token dropout.

Posters (`--augment`): a preset name or a ``key=value`` list, optionally after a preset
(``light,rotate=10``); keys and their ranges: KEYS; 0 switches a step off.

| preset    | crop scale, aspect | flip | jitter b=c=s, hue | rotate | affine translate, scale, shear | fill, resample |
|-----------|--------------------|------|-------------------|--------|--------------------------------|----------------|
| none      | -                  | -    | -                 | -      | -                              | -              |
| light     | (0.8, 1), rel      | 0.5  | 0.1, -            | -      | -                              | -              |
| paper-000 | (0.7, 1), abs      | 0.5  | 0.3, 0.15         | 20     | 0.1, 0.9-1.1, 10               | black, nearest |
| paper-001 | -                  | 0.5  | 0.15, 0.05        | 5      | -                              | black, nearest |

paper-000: Supkhankulov 2025, Sec. 4.2 item 2 and the Sec. 4.3 listing (``train_transform``);
paper-001: Hessnawi, Debes, Jyhne, Sec. 4.2.2. Both evaluate on the plain resize (their
"validation images are simply resized"), i.e. our eval transform, which "none" returns as is.
Every step runs on the PIL image with torch's RNG, so a seeded run
(torch.manual_seed, or the DataLoader's per-worker seeding) redraws the same augmentation.
The order is paper 000's listing (Sec. 4.3, ``train_transform``):

    region crop -> the encoder's eval geometry -> flip -> colour jitter -> rotation -> affine
    -> the encoder's eval ToTensor + Normalize (+ the pad step of ``-o resize=pad``)

The region crop (``crop``, ``aspect``) picks the sub-image exactly as torchvision's
RandomResizedCrop does (its ``get_params``, scale ``(crop, 1)``, ratio ``(3/4, 4/3)``), and the
encoder's own eval geometry (extract/images.py square_transform) then fits it into the
square. With ``-o resize=squash`` (the default, and the papers' rule) that is
``RandomResizedCrop(pre.crop, scale=(crop, 1))`` exactly (same draws, same pixels, tested
against paper 000's code); with ``crop`` / ``pad`` the training geometry stays that of
evaluation, so train and test see posters shaped alike.

``aspect``: ``abs`` is torchvision's rule, the crop's own width/height in [3/4, 4/3]. On a
portrait poster that rule cannot keep the whole height: on the real subset's 150x300 posters
(1:2) no crop of area >= 0.67 has w/h >= 3/4, so every one of RandomResizedCrop's ten tries
fails and it falls back to the same centre 150x200 crop every time (no randomness, a third of
the height lost; on MM-IMDb's ~2:3 posters it tops out at 89% of the area). ``rel`` draws
the ratio relative to the poster's own, w/h in [3/4, 4/3] x W/H, so on average the crop has
the poster's shape, which is what the squash eval transform sees. Paper presets use ``abs``
(their code), ``light`` uses ``rel``.

``fill``: what rotation / affine put in the corners they expose. ``black`` is torchvision's
default (0), hence the papers'; ``mean`` is the normalisation mean (about 0 after Normalize),
the value the network reads as "no signal", as the ``pad`` resize mode does (extract/images.py).
``resample``: ``nearest`` is torchvision's default for RandomRotation / RandomAffine, hence
the papers'; ``encoder`` uses the encoder's own interpolation (bilinear or bicubic), which
does not alias the rotated edges.

Text (`--token-dropout p`, `token_dropout`): each real token other than the first ([CLS]) and
the last ([SEP]) is replaced by the tokenizer's [UNK] id with probability p (word dropout,
Iyyer et al. 2015, ACL; with a replacement token instead of deletion, as Bowman et al. 2016,
CoNLL, replace dropped words by UNK, so positions are kept). [UNK], not [MASK], measured on
the project's `minilm` (all-MiniLM-L6-v2, 256 real-subset overviews, seed 0): its [MASK]
input embedding has norm 0.245 against a median token's 1.11 (the sentence model was distilled
and tuned on unmasked text, so [MASK] is barely trained), and dropping 10% of tokens to
[MASK] moves the pooled embedding to a mean cosine of 0.65 with the clean one, against 0.89
with [UNK] (0.47 vs 0.78 at 20%): [MASK] reads as a strong foreign signal, not as "a word is
missing". [UNK] also exists in every vocabulary (the lstm's `<unk>` is trained:
extract/encoders/scratch_text.py), which has no [CLS]/[SEP], so `keep_ends` is off there;
`dropout_ids(tokenizer)` gives both. Neither paper augments text (000 Sec. 4.2 item 1,
001 Sec. 4.2.1: tokenize, pad, truncate only), so the default is off.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from extract.encoders.torchvision_cnn import ImagePreprocess

FLAG = "--augment"
# key -> (kind, allowed, meaning); kind "float" has allowed = (low, high, low_open, high_open).
KEYS: dict[str, tuple[str, Any, str]] = {
    "crop": ("float", (0.0, 1.0, False, False), "RandomResizedCrop min area share, scale (crop, 1); 0 = off"),
    "aspect": ("choice", ("abs", "rel"), "crop ratio 3/4..4/3: of the crop (torchvision) or relative to the poster"),
    "flip": ("float", (0.0, 1.0, False, False), "horizontal flip probability"),
    "jitter": ("float", (0.0, 1.0, False, False), "ColorJitter brightness = contrast = saturation"),
    "hue": ("float", (0.0, 0.5, False, False), "ColorJitter hue"),
    "rotate": ("float", (0.0, 180.0, False, False), "RandomRotation degrees (+-)"),
    "translate": ("float", (0.0, 1.0, False, True), "RandomAffine translate share of width and height"),
    "scale": ("float", (0.0, 1.0, False, True), "RandomAffine scale (1 - scale, 1 + scale)"),
    "shear": ("float", (0.0, 90.0, False, True), "RandomAffine x-shear degrees (+-)"),
    "fill": ("choice", ("black", "mean"), "rotation / affine corner fill"),
    "resample": ("choice", ("nearest", "encoder"), "rotation / affine interpolation"),
}
OFF: dict[str, Any] = {"crop": 0.0, "aspect": "rel", "flip": 0.0, "jitter": 0.0, "hue": 0.0, "rotate": 0.0,
                       "translate": 0.0, "scale": 0.0, "shear": 0.0, "fill": "mean", "resample": "encoder"}
AUGMENTS: dict[str, dict[str, Any]] = {
    "none": dict(OFF),
    # Ours: mild, shape-keeping; no hue (poster palettes carry genre cues: paper 001 Sec. 6.2)
    # and no rotation (posters are upright by design).
    "light": {**OFF, "crop": 0.8, "aspect": "rel", "flip": 0.5, "jitter": 0.1},
    # Paper 000, Sec. 4.2 item 2 and its Sec. 4.3 train_transform: RandomResizedCrop(224,
    # scale=(0.7, 1.0)), RandomHorizontalFlip(0.5), ColorJitter(0.3, 0.3, 0.3, 0.15),
    # RandomRotation(20), RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10).
    "paper-000": {"crop": 0.7, "aspect": "abs", "flip": 0.5, "jitter": 0.3, "hue": 0.15, "rotate": 20.0,
                  "translate": 0.1, "scale": 0.1, "shear": 10.0, "fill": "black", "resample": "nearest"},
    # Paper 001, Sec. 4.2.2: resize to 224x224, flip p 0.5, rotation +-5 degrees, brightness /
    # contrast / saturation +-15%, hue +-5%; no crop. Fill and interpolation are not stated:
    # torchvision's defaults (black, nearest).
    "paper-001": {**OFF, "flip": 0.5, "jitter": 0.15, "hue": 0.05, "rotate": 5.0, "fill": "black",
                  "resample": "nearest"},
}
ORDER = "region crop, eval geometry, flip, jitter, rotate, affine, eval to-tensor+normalize"


def _valid() -> str:
    return f"valid keys: {', '.join(KEYS)}; presets: {', '.join(AUGMENTS)}"


def _value(key: str, raw: Any) -> Any:
    kind, allowed, _ = KEYS[key]
    if kind == "choice":
        if raw not in allowed:
            raise ValueError(f"{FLAG}: {key} must be one of {list(allowed)}, got {raw!r}; {_valid()}")
        return raw
    lo, hi, lo_open, hi_open = allowed
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(raw, bool) or not (lo < v if lo_open else lo <= v) or not (v < hi if hi_open else v <= hi):
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        what = "in" if math.isfinite(v) or str(raw).strip().lower() == "nan" else "a number in"
        raise ValueError(f"{FLAG}: {key} must be {what} {span}, got {raw!r}; {_valid()}")
    return v


def check_spec(spec: dict[str, Any] | str) -> dict[str, Any]:
    """A full, validated settings dict (missing keys off) from a dict or an `--augment` string."""
    if isinstance(spec, str):
        return parse_augment(spec)
    unknown = [k for k in spec if k not in KEYS]
    if unknown:
        raise ValueError(f"{FLAG}: unknown key {unknown[0]!r}; {_valid()}")
    return {**OFF, **{k: _value(k, v) for k, v in spec.items()}}


def parse_augment(text: str) -> dict[str, Any]:
    """`--augment` text -> settings: ``PRESET``, ``key=value,...`` or ``PRESET,key=value,...``
    (overrides start from "none" when no preset leads). Bad input: one ValueError line."""
    items = [s.strip() for s in str(text).split(",")]
    if not items or any(not s for s in items):
        raise ValueError(f"{FLAG}: empty item in {text!r}; {_valid()}")
    base = dict(OFF)
    if "=" not in items[0]:
        if items[0] not in AUGMENTS:
            raise ValueError(f"{FLAG}: {items[0]!r} is neither a preset nor key=value; {_valid()}")
        base = dict(AUGMENTS[items.pop(0)])
    seen: set[str] = set()
    for item in items:
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not eq:
            raise ValueError(f"{FLAG}: {item!r} is not key=value (a preset may only come first); {_valid()}")
        if key not in KEYS:
            raise ValueError(f"{FLAG}: unknown key {key!r}; {_valid()}")
        if key in seen:
            raise ValueError(f"{FLAG}: key {key!r} given twice; {_valid()}")
        seen.add(key)
        base[key] = _value(key, val)
    return base


def _canonical(s: dict[str, Any]) -> dict[str, Any]:
    """Settings with the knobs of switched-off steps set to None: same effect, same dict."""
    c = dict(s)
    if not c["crop"]:
        c["aspect"] = None
    if not (c["rotate"] or c["translate"] or c["scale"] or c["shear"]):
        c["fill"] = c["resample"] = None
    return c


def describe_augment(spec: dict[str, Any] | str) -> dict[str, Any]:
    """JSON-able record of what the augmentation does, for the run config (and its hash).

    Depends only on the effect, not on the spelling: ``light`` and its key=value list, or two
    spellings of "off", describe alike; ``preset`` names the preset with these settings."""
    c = _canonical(check_spec(spec))
    name = next((n for n, p in AUGMENTS.items() if _canonical(p) == c), "custom")
    return {"preset": name, **c, "order": ORDER if augments_input(spec) else None}


def augments_input(spec: dict[str, Any] | str | float) -> bool:
    """Whether the training input differs from the eval input: False only for posters with
    every step off (``none``), or for a token-dropout probability (a float) of 0."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec) > 0
    s = check_spec(spec)  # type: ignore[arg-type]
    return any(s[k] for k in ("crop", "flip", "jitter", "hue", "rotate", "translate", "scale", "shear"))


def summary(spec: dict[str, Any] | str) -> str:
    """One line for the user: the preset and the steps that are on, e.g.
    ``augment light: crop=0.8 aspect=rel flip=0.5 jitter=0.1``."""
    d = describe_augment(spec)
    on = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
          if k in KEYS and v is not None and v != 0.0]
    return f"augment {d['preset']}: " + (" ".join(on) if on else "off")


class RegionCrop:
    """PIL image -> a random sub-image picked as torchvision's RandomResizedCrop picks it
    (`get_params`: area share in `scale`, log-uniform ratio, 10 tries, then its centre
    fallback), not resized. `relative`: the ratio range is multiplied by the image's W/H.
    A plain class so DataLoader workers can pickle it; draws on torch's global RNG."""

    RATIO = (3 / 4, 4 / 3)  # torchvision's default, paper 000's (it passes none)

    def __init__(self, scale: tuple[float, float], relative: bool) -> None:
        self.scale, self.relative = scale, relative

    def __call__(self, im: Any) -> Any:
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms import functional as TF

        w, h = im.size
        r = (w / h) if self.relative else 1.0
        i, j, ch, cw = RandomResizedCrop.get_params(im, list(self.scale), [self.RATIO[0] * r, self.RATIO[1] * r])
        return TF.crop(im, i, j, ch, cw)

    def __repr__(self) -> str:
        return f"RegionCrop(scale={self.scale}, relative={self.relative})"


def _split_eval(eval_t: Any) -> tuple[list[Any], list[Any], tuple[float, ...], str]:
    """An eval Compose -> (PIL geometry steps, tensor steps from ToTensor on, mean, interpolation)."""
    from torchvision import transforms as T

    steps = list(getattr(eval_t, "transforms", []))
    at = next((i for i, t in enumerate(steps) if isinstance(t, T.ToTensor)), None)
    norm = next((t for t in steps if isinstance(t, T.Normalize)), None)
    if at is None or norm is None:
        raise ValueError(f"{FLAG}: the encoder's eval transform is not a Compose with ToTensor and Normalize")
    interp = next((getattr(t, "interpolation") for t in steps[:at] if hasattr(t, "interpolation")), "bilinear")
    interp = interp.value if isinstance(interp, T.InterpolationMode) else str(interp)
    return steps[:at], steps[at:], tuple(norm.mean), interp


def build_image_train_transform(pre: ImagePreprocess | Any, spec: dict[str, Any] | str) -> Any:
    """The training transform: PIL RGB poster -> normalised float tensor (3, crop, crop).

    `pre` is the encoder's ImagePreprocess (or its eval Compose, e.g. CLIP's). With every step
    off it returns the eval transform itself (`pre.build()`): no augmentation, same numbers.
    Otherwise the steps of the module docstring, torchvision.transforms.v2 ops on PIL between
    the eval transform's own geometry and its own ToTensor/Normalize. Picklable."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2

    s = check_spec(spec)
    eval_t = pre.build() if isinstance(pre, ImagePreprocess) else pre
    if not augments_input(s):
        return eval_t
    geometry, tail, mean, interp = _split_eval(eval_t)
    steps: list[Any] = []
    if s["crop"]:
        steps.append(RegionCrop((s["crop"], 1.0), relative=s["aspect"] == "rel"))
    steps += geometry
    if s["flip"]:
        steps.append(v2.RandomHorizontalFlip(s["flip"]))
    if s["jitter"] or s["hue"]:
        j = s["jitter"] or None  # None: that factor is not drawn (torchvision skips 0 too)
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=s["hue"] or None))
    fill = 0 if s["fill"] == "black" else tuple(int(round(m * 255)) for m in mean)
    resample = InterpolationMode.NEAREST if s["resample"] == "nearest" else InterpolationMode(interp)
    if s["rotate"]:
        steps.append(v2.RandomRotation(s["rotate"], interpolation=resample, fill=fill))
    if s["translate"] or s["scale"] or s["shear"]:
        t, z = s["translate"], s["scale"]
        steps.append(v2.RandomAffine(degrees=0, translate=(t, t) if t else None,
                                     scale=(1 - z, 1 + z) if z else None, shear=s["shear"] or None,
                                     interpolation=resample, fill=fill))
    return v2.Compose(steps + tail)


def dropout_ids(tokenizer: Any) -> tuple[int, bool]:
    """(replace_id, keep_ends) for `token_dropout` with this tokenizer (a Hugging Face one or
    the lstm's WordVocab): its [UNK] id (module docstring: why not [MASK]); keep_ends when it
    adds [CLS] ... [SEP]."""
    rid = getattr(tokenizer, "unk_token_id", None)
    if rid is None:
        raise ValueError(f"--token-dropout: tokenizer {type(tokenizer).__name__} has no unknown token "
                         "to replace dropped tokens with")
    return int(rid), getattr(tokenizer, "cls_token_id", None) is not None


def token_dropout(input_ids: torch.Tensor, attention_mask: torch.Tensor, p: float,
                  generator: torch.Generator | None, replace_id: int, keep_ends: bool = True) -> torch.Tensor:
    """(B, L) ids -> ids with each droppable token replaced by `replace_id` with probability p.

    Droppable: a real token (attention_mask 1) that, with `keep_ends`, is neither the first
    real one ([CLS]) nor the last ([SEP]); padding is never touched. p = 0 returns
    `input_ids` itself and draws nothing. Draws (B, L) uniforms from `generator`."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"--token-dropout must be in [0, 1), got {p}")
    if p == 0:
        return input_ids
    real = attention_mask.bool()
    ok = real.clone()
    if keep_ends:
        n = real.shape[1]
        pos = torch.arange(n, device=real.device).expand_as(real)
        first = torch.where(real, pos, n).min(dim=1, keepdim=True).values
        last = torch.where(real, pos, -1).max(dim=1, keepdim=True).values
        ok &= (pos != first) & (pos != last)
    dev = generator.device if generator is not None else input_ids.device
    hit = torch.rand(input_ids.shape, generator=generator, device=dev).to(input_ids.device) < p
    return torch.where(ok & hit, torch.full_like(input_ids, replace_id), input_ids)
