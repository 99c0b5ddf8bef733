"""finetune/augment.py: poster augmentation presets, the train transform, token dropout."""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from extract.encoders.torchvision_cnn import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from finetune.augment import (AUGMENTS, KEYS, OFF, RegionCrop, augments_input, build_image_train_transform,
                              describe_augment, dropout_ids, parse_augment, summary, token_dropout)


def _poster(w: int = 48, h: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _pre(mode: str = "squash", crop: int = 32) -> ImagePreprocess:
    return ImagePreprocess(resize=crop + 4, crop=crop, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize_mode=mode)


def _seeded(t, im, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return t(im)


# ---- presets and the parser ------------------------------------------------------------
def test_presets_hold_the_papers_numbers():
    p0, p1 = parse_augment("paper-000"), parse_augment("paper-001")
    # Paper 000 Sec. 4.2 item 2 / Sec. 4.3 listing, typed from the paper.
    assert {k: p0[k] for k in ("crop", "flip", "jitter", "hue", "rotate", "translate", "scale", "shear")} == {
        "crop": 0.7, "flip": 0.5, "jitter": 0.3, "hue": 0.15, "rotate": 20, "translate": 0.1, "scale": 0.1,
        "shear": 10}
    assert p0["aspect"] == "abs" and p0["fill"] == "black" and p0["resample"] == "nearest"
    # Paper 001 Sec. 4.2.2: no crop, flip 0.5, +-5 degrees, +-15 % b/c/s, +-5 % hue.
    assert (p1["crop"], p1["flip"], p1["rotate"], p1["jitter"], p1["hue"]) == (0.0, 0.5, 5, 0.15, 0.05)
    assert p1["translate"] == p1["scale"] == p1["shear"] == 0
    assert parse_augment("light") == {**OFF, "crop": 0.8, "aspect": "rel", "flip": 0.5, "jitter": 0.1}
    assert parse_augment("none") == OFF and set(AUGMENTS) == {"none", "light", "paper-000", "paper-001"}
    for p in AUGMENTS.values():
        assert set(p) == set(KEYS)


def test_overrides_parse_from_none_or_after_a_preset():
    assert parse_augment("crop=0.7,flip=0.5,jitter=0.2,rotate=10") == {
        **OFF, "crop": 0.7, "flip": 0.5, "jitter": 0.2, "rotate": 10.0}
    assert parse_augment(" light , rotate=10, fill=black") == {**AUGMENTS["light"], "rotate": 10.0, "fill": "black"}
    assert parse_augment("paper-000,rotate=0")["rotate"] == 0.0


@pytest.mark.parametrize("text, says", [
    ("foo=1", "unknown key 'foo'"), ("flip=2", "flip must be in [0, 1]"), ("crop=x", "crop must be a number in"),
    ("hue=0.6", "hue must be in [0, 0.5]"), ("rotate=-1", "rotate must be in [0, 180]"),
    ("translate=1", "translate must be in [0, 1)"), ("jitter=nan", "jitter must be in"),
    ("aspect=diag", "aspect must be one of ['abs', 'rel']"), ("flip=0.5,flip=0.2", "'flip' given twice"),
    ("light,paper-000", "a preset may only come first"), ("strong", "neither a preset nor key=value"),
    ("", "empty item"), ("flip=0.5,", "empty item")])
def test_bad_augment_is_one_line_naming_the_keys(text, says):
    with pytest.raises(ValueError) as e:
        parse_augment(text)
    msg = str(e.value)
    assert says in msg and "\n" not in msg and msg.startswith("--augment")
    assert "valid keys: crop, aspect, flip, jitter, hue, rotate, translate, scale, shear" in msg
    assert "presets: none, light, paper-000, paper-001" in msg


def test_describe_follows_the_effect_and_is_json():
    light = describe_augment("light")
    assert json.loads(json.dumps(light)) == light and light["preset"] == "light"
    assert describe_augment("crop=0.8,flip=0.5,jitter=0.1") == light  # same settings, same record
    assert describe_augment("rotate=0,fill=black") == describe_augment("none")  # switched-off knobs vanish
    assert describe_augment("none")["preset"] == "none" and describe_augment("flip=0.3")["preset"] == "custom"
    assert describe_augment("paper-000") != describe_augment("paper-001")
    assert describe_augment({"flip": 0.5}) == describe_augment("flip=0.5")  # a dict spec works too
    assert summary("light") == "augment light: crop=0.8 aspect=rel flip=0.5 jitter=0.1"
    assert summary("none") == "augment none: off"


def test_augments_input():
    assert not augments_input("none") and not augments_input("flip=0,rotate=0") and not augments_input(0.0)
    assert all(augments_input(n) for n in ("light", "paper-000", "paper-001", "shear=5"))
    assert augments_input(0.1)
    with pytest.raises(ValueError, match="unknown key 'zoom'"):
        augments_input({"zoom": 0.1})


# ---- the poster transform ---------------------------------------------------------------
@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_none_is_the_eval_transform_exactly(mode):
    pre, im = _pre(mode), _poster()
    want = pre.build()(im)
    for spec in ("none", "flip=0,jitter=0", OFF):
        t = build_image_train_transform(pre, spec)
        assert type(t) is type(pre.build()) and torch.equal(t(im), want)


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
@pytest.mark.parametrize("name", ["light", "paper-000", "paper-001"])
def test_train_transform_is_seeded_shaped_and_differs_from_eval(mode, name):
    pre, im = _pre(mode), _poster()
    t = build_image_train_transform(pre, name)
    a, b = _seeded(t, im, 3), _seeded(t, im, 3)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, pre.build()(im))
    assert not torch.equal(a, _seeded(t, im, 4))  # another seed, another draw


def test_picklable_for_workers_and_same_draws_after_pickling():
    t = build_image_train_transform(_pre(), "paper-000")
    u = pickle.loads(pickle.dumps(t))
    im = _poster()
    assert torch.equal(_seeded(t, im, 7), _seeded(u, im, 7))
    pickle.dumps(build_image_train_transform(_pre("pad"), "light"))


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_flip_one_flips_the_eval_image(mode):
    pre, im = _pre(mode), _poster(40, 70)
    out = _seeded(build_image_train_transform(pre, "flip=1"), im, 0)
    assert torch.equal(out, torch.flip(pre.build()(im), dims=[-1]))


def test_paper_000_is_the_papers_listing_draw_for_draw():
    """Paper 000 Sec. 4.3's train_transform, typed from the paper (torchvision v1), against our
    paper-000 on a squash encoder: the same seed gives the same pixels."""
    from torchvision import transforms as T

    paper = T.Compose([
        T.RandomResizedCrop(224, scale=(0.7, 1.0)), T.RandomHorizontalFlip(0.5), T.ColorJitter(0.3, 0.3, 0.3, 0.15),
        T.RandomRotation(20), T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10),
        T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ours = build_image_train_transform(_pre("squash", 224), "paper-000")
    im = _poster(90, 100)
    for seed in range(3):
        assert torch.equal(_seeded(paper, im, seed), _seeded(ours, im, seed))


def test_paper_001_is_its_section_4_2_2():
    from torchvision import transforms as T

    paper = T.Compose([T.Resize((32, 32)), T.RandomHorizontalFlip(0.5), T.ColorJitter(0.15, 0.15, 0.15, 0.05),
                       T.RandomRotation(5), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ours, im = build_image_train_transform(_pre(), "paper-001"), _poster()
    for seed in range(3):
        assert torch.equal(_seeded(paper, im, seed), _seeded(ours, im, seed))


def test_rotation_fill_black_or_mean():
    im = Image.new("RGB", (32, 32), (200, 10, 100))
    black = _seeded(build_image_train_transform(_pre(), "rotate=180,fill=black"), im, 1)
    mean = _seeded(build_image_train_transform(_pre(), "rotate=180"), im, 1)  # fill=mean by default
    black_px = torch.tensor([(0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])  # -2.118, -2.036, -1.804
    is_black = (black - black_px[:, None, None]).abs().amax(0) < 1e-4
    near_zero = mean.abs().amax(0) < 0.5 / 255 / min(IMAGENET_STD)  # the mean rounded to 8 bits
    assert is_black.any() and torch.equal(is_black, near_zero)  # same draw, same corners filled


def test_region_crop_aspect_on_a_1_to_2_poster():
    im = Image.new("RGB", (150, 300))
    torch.manual_seed(0)
    # abs: no crop of area >= 0.7 has w/h >= 3/4 on 150x300, so torchvision's fallback gives the
    # centre 150 x round(150 / 0.75) = 150 x 200 every time.
    assert {RegionCrop((0.7, 1.0), relative=False)(im).size for _ in range(20)} == {(150, 200)}
    sizes = [RegionCrop((0.7, 1.0), relative=True)(im).size for _ in range(200)]
    ratio = np.array([math.log((w / h) / 0.5) for w, h in sizes])  # log of w/h relative to the poster's
    assert len(set(sizes)) > 50 and abs(ratio.mean()) < 0.05 and np.abs(ratio).max() <= math.log(4 / 3) + 0.02
    assert min(w * h for w, h in sizes) >= 0.7 * 150 * 300 * 0.98


# ---- token dropout ----------------------------------------------------------------------
def _batch(b: int = 4000, n: int = 24, seed: int = 0, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, n + 1, (b,), generator=g)
    pos = torch.arange(n).expand(b, n)
    mask = (pos < lengths[:, None]) if not left else (pos >= n - lengths[:, None])
    ids = torch.randint(10, 1000, (b, n), generator=g)
    ids[~mask] = 0  # [PAD]
    first = mask.float().argmax(1)
    last = n - 1 - mask.flip(1).float().argmax(1)
    ids[torch.arange(b), first], ids[torch.arange(b), last] = 2, 3  # [CLS], [SEP]
    return ids, mask.long()


@pytest.mark.parametrize("left", [False, True])
def test_token_dropout_keeps_cls_sep_padding_and_hits_rate_p(left):
    ids, mask = _batch(left=left)
    out = token_dropout(ids, mask, 0.3, torch.Generator().manual_seed(1), replace_id=1)
    changed = out != ids
    assert torch.equal(out[changed], torch.ones(int(changed.sum()), dtype=ids.dtype))  # only [UNK] written
    assert torch.equal(out[ids == 2], ids[ids == 2]) and torch.equal(out[ids == 3], ids[ids == 3])  # CLS, SEP
    assert torch.equal(out[mask == 0], ids[mask == 0])  # padding
    inner = (mask == 1) & (ids != 2) & (ids != 3)
    rate = changed[inner].float().mean().item()
    assert abs(rate - 0.3) < 0.01, rate  # ~60k draws: sd 0.002
    again = token_dropout(ids, mask, 0.3, torch.Generator().manual_seed(1), replace_id=1)
    assert torch.equal(out, again)  # the generator decides


def test_token_dropout_off_and_without_ends():
    ids, mask = _batch(b=50)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert token_dropout(ids, mask, 0.0, g, replace_id=1) is ids  # unchanged, same tensor
    assert torch.equal(g.get_state(), state)  # and nothing drawn
    out = token_dropout(ids, mask, 0.9, g, replace_id=1, keep_ends=False)  # lstm: no [CLS]/[SEP]
    assert (out[:, 0] == 1).any() and torch.equal(out[mask == 0], ids[mask == 0])
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"--token-dropout must be in \[0, 1\)"):
            token_dropout(ids, mask, p, g, replace_id=1)


def test_dropout_ids_unk_and_ends():
    from extract.encoders.hf_text import tiny_tokenizer
    from extract.encoders.scratch_text import WordVocab

    tok = tiny_tokenizer()
    assert dropout_ids(tok) == (tok.unk_token_id, True)
    assert dropout_ids(WordVocab(["the", "city"], "words")) == (1, False)  # `<unk>`, no [CLS]/[SEP]
    with pytest.raises(ValueError, match="no unknown token"):
        dropout_ids(object())


def test_an_eval_compose_works_too_and_a_foreign_one_is_refused():
    """Encoders without an ImagePreprocess (clip-image) pass their eval Compose."""
    from torchvision import transforms as T

    ev = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    im = _poster()
    assert build_image_train_transform(ev, "none") is ev
    assert torch.equal(_seeded(build_image_train_transform(ev, "flip=1"), im, 0), torch.flip(ev(im), dims=[-1]))
    with pytest.raises(ValueError, match="not a Compose with ToTensor and Normalize"):
        build_image_train_transform(T.Compose([T.Resize((32, 32))]), "light")
