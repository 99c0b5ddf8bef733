"""Tiny, download-free configurations of every registered encoder and the inputs the
encoder tests feed them (shared by the tests/test_encoder*.py modules)."""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from extract.encoders import EncodeOutput, create_encoder

CPU = torch.device("cpu")

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
             "text_cfg": {"width": 32, "heads": 2, "layers": 1}}
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_DISTILBERT = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64}
MAXLEN = 16
# One tiny, download-free configuration per registered encoder (a new encoder must add one).
TINY: dict[str, dict] = {
    "clip-image": {"weights": "random", "options": {"model_cfg": TINY_CLIP}},
    "clip-text": {"weights": "random", "options": {"model_cfg": TINY_CLIP}},
    "resnet18": {"weights": "random"},
    "resnet50": {"weights": "random"},
    "efficientnet-lite0": {"weights": "random"},
    "bert": {"weights": "random", "options": {"config": TINY_BERT, "max_length": MAXLEN}},
    "distilbert": {"weights": "random", "options": {"config": TINY_DISTILBERT, "max_length": MAXLEN}},
    "minilm": {"weights": "random", "options": {"config": TINY_BERT, "max_length": MAXLEN}},
    "tfidf": {"options": {"min_df": 1}},
    "lstm": {"options": {"embed_dim": 8, "hidden": 8, "max_length": MAXLEN, "min_count": 1}},
    "cnn": {"options": {"channels": [8, 8, 16, 16]}},
}
EXPECTED_DIM = {"clip-image": 16, "clip-text": 16, "resnet18": 512, "resnet50": 2048,
                "efficientnet-lite0": 1280, "bert": 32, "distilbert": 32, "minilm": 32,
                "lstm": 16, "cnn": 16}
TEXTS = ["A detective hunts a serial killer in the city.",
         "Two friends travel across the desert to find water.",
         "A young woman falls in love in Paris."]
TRAIN_TEXTS = TEXTS + ["A killer in the desert.", "Friends find love in the city.", "A young detective."]
NAMES = sorted(TINY)


def make_image(kind: int, size: tuple[int, int] = (90, 70)) -> Image.Image:
    """Distinct synthetic pictures: a red disc on blue, green stripes on yellow, a grey grid."""
    bg = [(20, 40, 200), (240, 220, 40), (128, 128, 128)][kind]
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    w, h = size
    if kind == 0:
        d.ellipse([w * 0.2, h * 0.2, w * 0.8, h * 0.8], fill=(220, 30, 30))
    elif kind == 1:
        for x in range(0, w, 12):
            d.rectangle([x, 0, x + 5, h], fill=(30, 160, 60))
    else:
        for x in range(0, w, 8):
            d.line([x, 0, x, h], fill=(0, 0, 0), width=2)
        for y in range(0, h, 8):
            d.line([0, y, w, y], fill=(255, 255, 255), width=2)
    return im


IMAGES = [make_image(0), make_image(1), make_image(2)]


def raw_inputs(enc) -> list:
    return IMAGES if enc.modality == "image" else TEXTS


def make_encoder(name: str, **over) -> object:
    kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY[name].items()}
    if "options" in over:
        kw["options"] = {**kw.get("options", {}), **over.pop("options")}
    enc = create_encoder(name, **{**kw, **over})
    if enc.needs_fit:
        enc.fit(TRAIN_TEXTS)
    return enc


def batch_of(enc, raw):
    return enc.collate([enc.preprocess(r) for r in raw])


def encode(enc, raw, tokens: bool = False) -> EncodeOutput:
    with torch.inference_mode():
        return enc.encode(batch_of(enc, raw), tokens=tokens)
