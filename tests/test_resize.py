"""`-o resize=crop|squash|pad` on every image encoder (extract.images.square_transform).

The expectations are worked out by hand for a 1:2 portrait poster (like the real subset's
150x300) painted in three horizontal bands, red / green / blue, each a third of the height:

- crop, shorter side -> R then centre crop S: the resized poster is R wide, 2R tall; the crop
  keeps rows (2R - S)/2 .. (2R + S)/2, so the red band (rows 0 .. 2R/3) shows S/2 - R/3 rows
  (R=256, S=224: 26.7 of 224; CLIP's tiny R=S=32: 5.3 of 32);
- squash: every band gets S/3 rows, full width (papers 000/001: Resize((224, 224)));
- pad: the poster becomes S/2 wide and S tall, centred: columns 0 .. S/4 and 3S/4 .. S are
  the normalisation mean, i.e. exactly 0 after normalisation; each band S/3 rows.
"""
from __future__ import annotations

import json

import h5py
import pytest
import torch
from PIL import Image

from extract.encoders import ENCODERS
from extract.images import DEFAULT_RESIZE, RESIZE_MODES
from tests.cli_helpers import run_refused
from tests.tiny_encoders import TINY, TINY_CLIP, make_encoder

IMAGE_ENCODERS = [n for n in sorted(TINY) if ENCODERS[n].modality == "image"]
# (shorter-side resize R, square side S) of each tiny image encoder's crop pipeline.
GEOMETRY = {"clip-image": (32, 32), "resnet18": (256, 224), "resnet50": (256, 224),
            "efficientnet-lite0": (256, 224), "cnn": (224, 224)}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def banded_poster(w: int = 60, h: int = 120) -> Image.Image:
    im = Image.new("RGB", (w, h))
    for i, c in enumerate((RED, GREEN, BLUE)):
        im.paste(c, (0, i * h // 3, w, (i + 1) * h // 3))
    return im


def _mean_std(enc) -> tuple[torch.Tensor, torch.Tensor]:
    info = enc.preprocess_info()
    return torch.tensor(info["mean"]).view(3, 1, 1), torch.tensor(info["std"]).view(3, 1, 1)


def _red_rows(x: torch.Tensor, enc) -> int:
    """Rows whose centre pixel is red (back on the [0, 1] scale)."""
    mean, std = _mean_std(enc)
    rgb = (x * std + mean)[:, :, x.shape[2] // 2]  # (3, S): the centre column
    return int(((rgb[0] > 0.5) & (rgb[1] < 0.5)).sum())


def test_every_image_encoder_has_the_option():
    """Every registered image encoder of the project offers it, with one shared default (the
    test-only toy-image aside)."""
    assert IMAGE_ENCODERS == sorted(GEOMETRY)
    assert DEFAULT_RESIZE in RESIZE_MODES
    for name in IMAGE_ENCODERS:
        assert ENCODERS[name].defaults["resize"] == DEFAULT_RESIZE
        assert make_encoder(name).describe()["options"]["resize"] == DEFAULT_RESIZE


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_modes_against_hand_geometry(name):
    r, s = GEOMETRY[name]
    poster = banded_poster()
    out = {m: make_encoder(name, options={"resize": m}).preprocess(poster) for m in RESIZE_MODES}
    enc = make_encoder(name, options={"resize": "crop"})
    for m, x in out.items():
        assert x.shape == (3, s, s), m
    assert abs(_red_rows(out["crop"], enc) - (s / 2 - r / 3)) <= 1.5
    assert abs(_red_rows(out["squash"], enc) - s / 3) <= 1.5
    assert abs(_red_rows(out["pad"], enc) - s / 3) <= 1.5
    # squash keeps the full width: the first column is poster, not padding
    mean, std = _mean_std(enc)
    red = (torch.tensor([1.0, 0.0, 0.0]) - mean.flatten()) / std.flatten()
    assert torch.allclose(out["squash"][:, 2, 0], red, atol=0.05)
    # pad: the letterbox band is the normalisation mean, i.e. exactly 0 (not black = -mean/std)
    pad = out["pad"]
    assert torch.count_nonzero(pad[:, :, : s // 4 - 1]) == 0
    assert torch.count_nonzero(pad[:, :, 3 * s // 4 + 1:]) == 0
    assert torch.allclose(pad[:, 2, s // 2], red, atol=0.05)  # the poster sits in the middle
    assert torch.count_nonzero(pad[:, :, s // 4 + 2: 3 * s // 4 - 2] == 0) == 0


def test_pad_of_a_thin_strip_does_not_fail():
    """A 3x900 strip: torchvision's own longest-side resize would round its width to 0."""
    x = make_encoder("efficientnet-lite0", options={"resize": "pad"}).preprocess(Image.new("RGB", (3, 900)))
    assert x.shape == (3, 224, 224)


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_unknown_value_names_the_option(name):
    with pytest.raises(ValueError, match=r"-o resize must be one of \['crop', 'squash', 'pad'\], got 'zoom'"):
        make_encoder(name, options={"resize": "zoom"})


def test_cli_refuses_unknown_value(tiny_data, tmp_path):
    run_refused(["extract", "--data", tiny_data, "--encoder", "resnet18", "--weights", "random",
                 "-o", "resize=zoom", "--out", tmp_path], "-o resize", "crop", "squash", "pad")


def test_recorded_and_hashed(demo_root, tmp_path):
    """Each mode gets its own cache file (the settings hash covers it), records the mode in the
    preprocess attr, and a repeat reuses only the cache of its own mode."""
    from extract.datasets import DatasetConfig
    from extract.run import ExtractConfig, run_extract

    data = demo_root

    def extract(mode: str):
        return run_extract(ExtractConfig(dataset=DatasetConfig(path=data, format="mmimdb"), encoder="clip-image",
                                         weights="random", options={"model_cfg": TINY_CLIP, "resize": mode},
                                         out=tmp_path / "c", workers=0), progress=False)

    first = {m: extract(m) for m in RESIZE_MODES}
    assert len({r.path for r in first.values()}) == 3
    feats = {}
    for m, r in first.items():
        with h5py.File(r.path, "r") as f:
            assert json.loads(f.attrs["options"])["resize"] == m
            pre = json.loads(f.attrs["preprocess"])
            assert pre["resize_mode"] == {"crop": "shortest"}.get(m, m)
            feats[m] = f["features"][:]
    assert not (feats["crop"] == feats["squash"]).all() and not (feats["squash"] == feats["pad"]).all()
    again = extract("squash")
    assert again.skipped and again.path == first["squash"].path
