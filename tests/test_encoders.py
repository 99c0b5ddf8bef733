"""Every registered encoder on a tiny random-init model: shapes, tokens, determinism,
pickling, option checks, state-dict round trips; plus family specifics and, marked
`offline_weights`, the real PyPI-packaged MiniLM and EfficientNet-Lite0 weights."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from PIL import Image, ImageDraw

from extract.encoders import ENCODERS, EncodeOutput, create_encoder, list_encoders

torch.set_num_threads(1)
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
}
EXPECTED_DIM = {"clip-image": 16, "clip-text": 16, "resnet18": 512, "resnet50": 2048,
                "efficientnet-lite0": 1280, "bert": 32, "distilbert": 32, "minilm": 32}
TEXTS = ["A detective hunts a serial killer in the city.",
         "Two friends travel across the desert to find water.",
         "A young woman falls in love in Paris."]
TRAIN_TEXTS = TEXTS + ["A killer in the desert.", "Friends find love in the city.", "A young detective."]
NAMES = sorted(TINY)


def _image(kind: int, size: tuple[int, int] = (90, 70)) -> Image.Image:
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


IMAGES = [_image(0), _image(1), _image(2)]


def _raw(enc) -> list:
    return IMAGES if enc.modality == "image" else TEXTS


def _make(name: str, **over) -> object:
    kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY[name].items()}
    if "options" in over:
        kw["options"] = {**kw.get("options", {}), **over.pop("options")}
    enc = create_encoder(name, **{**kw, **over})
    if enc.needs_fit:
        enc.fit(TRAIN_TEXTS)
    return enc


def _batch(enc, raw):
    return enc.collate([enc.preprocess(r) for r in raw])


def _encode(enc, raw, tokens: bool = False) -> EncodeOutput:
    with torch.inference_mode():
        return enc.encode(_batch(enc, raw), tokens=tokens)


@pytest.fixture(scope="module")
def loaded():
    """name -> a loaded tiny encoder, built once per test module."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            enc = _make(name)
            enc.load(CPU)
            cache[name] = enc
        return cache[name]

    return get


# ---- every encoder --------------------------------------------------------------------
def test_registry_has_every_family_and_a_tiny_config_for_each():
    # Encoders registered by test helpers (tests/toy_encoder.py) are not part of the product.
    shipped = {n for n in list_encoders() if not ENCODERS[n].__module__.startswith("tests.")}
    assert shipped == set(TINY)
    assert {ENCODERS[n].modality for n in NAMES} == {"image", "text"}
    with pytest.raises(ValueError, match="choose from"):
        create_encoder("clip")  # the CLI resolves clip + --modality; the registry does not


@pytest.mark.parametrize("name", NAMES)
def test_features_shape_dtype(name, loaded):
    enc = loaded(name)
    out = _encode(enc, _raw(enc))
    assert out.features.shape == (3, enc.dim)
    assert out.features.dtype == torch.float32 and out.features.device.type == "cpu"
    assert torch.isfinite(out.features).all()
    if name in EXPECTED_DIM:
        assert enc.dim == EXPECTED_DIM[name]
    assert out.tokens is None and out.token_mask is None  # only on request


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_input_sensitive(name, loaded):
    enc = loaded(name)
    a = _encode(enc, _raw(enc)).features
    b = _encode(enc, _raw(enc)).features
    assert torch.equal(a, b)
    scale = a.abs().max()  # random-init CNNs can have tiny activations: compare relatively
    assert scale > 0
    for i in range(3):
        for j in range(i + 1, 3):
            assert (a[i] - a[j]).abs().max() > 1e-3 * scale, (name, i, j)
    # A row does not depend on its batch neighbours (padding, batch statistics).
    single = _encode(enc, _raw(enc)[1:2]).features
    assert (single[0] - a[1]).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("name", NAMES)
def test_tokens(name, loaded):
    enc = loaded(name)
    if name == "tfidf":
        with pytest.raises(ValueError, match="no token-level output"):
            _encode(enc, TEXTS, tokens=True)
        return
    batch = _batch(enc, _raw(enc))
    with torch.inference_mode():
        out = enc.encode(batch, tokens=True)
        plain = enc.encode(batch, tokens=False)
    assert torch.equal(out.features, plain.features)  # asking for tokens changes nothing else
    B, T, D = out.tokens.shape
    assert B == 3 and out.tokens.dtype == torch.float32
    assert out.token_mask.shape == (B, T) and out.token_mask.dtype == torch.bool
    if enc.modality == "image":
        assert out.token_mask.all()
        assert T == {"clip-image": 4}.get(name, 49)  # 2x2 ViT patches / 7x7 conv map
    elif name == "clip-text":
        assert T == 77
        real = (batch["ids"] != 0).sum(1)
        assert torch.equal(out.token_mask.sum(1), real)
    else:
        assert T == MAXLEN  # fixed per config, whatever the batch's longest text
        assert torch.equal(out.token_mask.sum(1), batch["attention_mask"].sum(1))
        assert (out.tokens[~out.token_mask] == 0).all()
    assert out.tokens[out.token_mask].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_pickle_before_and_after_load(name):
    enc = _make(name)
    clone = pickle.loads(pickle.dumps(enc))  # what a spawn DataLoader worker receives
    enc.load(CPU)
    after = pickle.loads(pickle.dumps(enc))
    assert getattr(after, "model", None) is None  # the model never travels to workers
    raw = _raw(enc)[:2]
    ref = _batch(enc, raw)
    for c in (clone, after):
        got = c.collate([c.preprocess(r) for r in raw])
        if isinstance(ref, dict):
            assert all(torch.equal(got[k], ref[k]) for k in ref)
        elif isinstance(ref, torch.Tensor):
            assert torch.equal(got, ref)
        else:
            assert got == ref


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_lists_valid_ones(name):
    with pytest.raises(ValueError) as e:
        create_encoder(name, **{**TINY[name], "options": {"no_such_option": 1}})
    msg = str(e.value)
    assert "no_such_option" in msg and "valid options" in msg
    for key in ENCODERS[name].defaults:
        assert key in msg


@pytest.mark.parametrize("name", NAMES)
def test_describe_is_json_and_tracks_options(name):
    enc = _make(name)
    d = enc.describe()
    json.dumps(d)  # goes into the cache attrs and the cache-name hash
    assert d["encoder"] == name and d["modality"] == ENCODERS[name].modality
    assert d["weights"] == enc.weights_tag()
    if ENCODERS[name].defaults:
        key, value = next(iter(ENCODERS[name].defaults.items()))
        changed = {"model": "ViT-B-16", "pooling": "cls", "analyzer": "char_wb"}.get(key)
        other = _make(name, options={key: changed})
        assert other.describe() != d


@pytest.mark.parametrize("name", [n for n in NAMES if n != "tfidf"])
def test_state_dict_round_trip(name, loaded, tmp_path):
    enc = loaded(name)
    path = tmp_path / "finetuned.pt"
    torch.save(enc.model.state_dict(), path)
    fresh = _make(name)
    fresh.load(CPU)  # another random init: different numbers
    ref = _encode(enc, _raw(enc)).features
    assert not torch.allclose(_encode(fresh, _raw(enc)).features, ref)
    again = _make(name, state_dict=path)
    again.load(CPU)
    assert torch.equal(_encode(again, _raw(enc)).features, ref)
    assert again.describe()["state_dict"].startswith("finetuned.pt@sha256:")
    bad = tmp_path / "other.pt"
    torch.save({"not_a_layer.weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="does not fit"):
        _make(name, state_dict=bad).load(CPU)


def test_missing_state_dict_file():
    with pytest.raises(FileNotFoundError):
        _make("resnet18", state_dict="/nonexistent/finetuned.pt")


# ---- CLIP -------------------------------------------------------------------------------
def test_clip_defaults_resolve_without_download():
    enc = create_encoder("clip-image")  # ViT-B-32 + openai: configs only, nothing fetched yet
    assert enc.weights == "openai" and enc.dim == 512 and enc.needs_internet
    assert enc.describe()["quick_gelu"] is True  # openai weights were trained with QuickGELU
    info = enc.preprocess_info()
    assert info["size"] == 224 and info["interpolation"] == "bicubic"
    assert info["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])


def test_clip_bad_model_tag_path():
    with pytest.raises(ValueError, match="unknown open_clip model"):
        create_encoder("clip-image", options={"model": "ViT-Q-99"})
    with pytest.raises(ValueError, match="not a pretrained tag"):
        create_encoder("clip-text", weights="no-such-tag")
    with pytest.raises(FileNotFoundError):
        create_encoder("clip-text", weights="/nonexistent/clip.pt")
    with pytest.raises(ValueError, match="long_text"):
        create_encoder("clip-text", weights="random", options={"long_text": "summarize"})


def test_clip_image_preprocess_and_normalize(loaded):
    enc = loaded("clip-image")
    x = enc.preprocess(_image(0, (50, 120)))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    norm = _make("clip-image", options={"normalize": True})
    norm.load(CPU)
    assert torch.allclose(_encode(norm, IMAGES).features.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_clip_text_chunking(loaded, tmp_path):
    trunc = loaded("clip-text")
    path = tmp_path / "text.pt"
    torch.save(trunc.model.state_dict(), path)
    chunk = _make("clip-text", options={"long_text": "chunk"}, state_dict=path)
    chunk.load(CPU)
    # A text that fits one window: chunk == truncate, exactly.
    assert torch.equal(_encode(chunk, TEXTS).features, _encode(trunc, TEXTS).features)
    # "cat" and "dog" are one BPE token each: 75 + 75 of them = two full windows,
    # [SOT] cat*75 [EOT] and [SOT] dog*75 [EOT]; the text's feature is their mean.
    cats, dogs = "cat " * 75, "dog " * 75
    long = cats + dogs
    batch = chunk.collate([long, "a dog"])
    assert batch["ids"].shape == (3, 77) and batch["owner"].tolist() == [0, 0, 1]
    tok = chunk.tokenizer
    assert (batch["ids"][:, 0] == tok.sot_token_id).all()
    assert batch["ids"][0, 76] == tok.eot_token_id and batch["ids"][1, 76] == tok.eot_token_id
    got = _encode(chunk, [long, "a dog"]).features
    parts = _encode(trunc, [cats, dogs, "a dog"]).features
    assert torch.allclose(got[0], (parts[0] + parts[1]) / 2, atol=1e-5)
    assert torch.allclose(got[1], parts[2], atol=1e-5)
    # truncate keeps only the first window
    assert torch.allclose(_encode(trunc, [long]).features[0], parts[0], atol=1e-5)
    assert not torch.allclose(got[0], parts[0], atol=1e-3)
    with pytest.raises(ValueError, match="truncate"):
        _encode(chunk, TEXTS, tokens=True)


# ---- torchvision / EfficientNet ----------------------------------------------------------
def test_resnet_weights_resolution(tmp_path, loaded):
    v2 = create_encoder("resnet50", weights="IMAGENET1K_V2")  # no download until load()
    assert v2.preprocess_info()["resize"] == 232 and v2.weights_tag() == "torchvision:resnet50.IMAGENET1K_V2"
    assert create_encoder("resnet18").preprocess_info() == {
        "resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear"}
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        create_encoder("resnet18", weights="IMAGENET_BOGUS")
    with pytest.raises(FileNotFoundError):
        create_encoder("resnet18", weights="/nonexistent/resnet18.pth")
    # A local weights file: loaded strictly, hashed into the cache description.
    enc = loaded("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(enc.model.state_dict(), path)
    local = create_encoder("resnet18", weights=str(path))
    local.load(CPU)
    assert torch.equal(_encode(local, IMAGES).features, _encode(enc, IMAGES).features)
    assert local.describe()["weights"].startswith("r18.pth@sha256:")
    assert local.preprocess_info()["resize"] == 256


def test_cnn_runs_channels_last(loaded):
    enc = loaded("resnet18")
    assert enc.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert enc.preprocess(_image(1, (300, 200))).shape == (3, 224, 224)


def test_efficientnet_options():
    assert create_encoder("efficientnet-lite0").weights == "pypi"
    info = create_encoder("efficientnet-lite0", weights="random").preprocess_info()
    assert info["mean"] == pytest.approx([127 / 255] * 3) and info["std"] == pytest.approx([128 / 255] * 3)
    with pytest.raises(ValueError, match="pypi"):
        create_encoder("efficientnet-lite0", weights="imagenet")


# ---- Hugging Face text ------------------------------------------------------------------
def test_hf_pooling_variants(tmp_path, loaded):
    mean = loaded("bert")
    path = tmp_path / "bert.pt"
    torch.save(mean.model.state_dict(), path)
    out = _encode(mean, TEXTS, tokens=True)
    m = out.token_mask.unsqueeze(-1).float()
    assert torch.allclose(out.features, (out.tokens * m).sum(1) / m.sum(1), atol=1e-5)
    cls = _make("bert", options={"pooling": "cls"}, state_dict=path)
    cls.load(CPU)
    assert torch.allclose(_encode(cls, TEXTS).features, out.tokens[:, 0], atol=1e-6)
    pooler = _make("bert", options={"pooling": "pooler", "normalize": True}, state_dict=path)
    pooler.load(CPU)
    f = _encode(pooler, TEXTS).features
    assert f.shape == (3, 32) and torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="no pooler"):
        _make("distilbert", options={"pooling": "pooler"}).load(CPU)
    with pytest.raises(ValueError, match="pooling must be one of"):
        create_encoder("bert", weights="random", options={"pooling": "max"})
    with pytest.raises(ValueError, match="only for weights 'random'"):
        create_encoder("bert", options={"config": TINY_BERT})


def test_hf_truncates_to_max_length(loaded):
    enc = loaded("distilbert")
    batch = enc.collate([" ".join(["love"] * 100), "a city"])
    assert batch["input_ids"].shape == (2, MAXLEN)
    assert _encode(enc, [" ".join(["love"] * 100)], tokens=True).tokens.shape == (1, MAXLEN, 32)


def test_minilm_defaults():
    enc = create_encoder("minilm")
    assert enc.options["pooling"] == "mean" and enc.options["normalize"] is True
    assert enc.options["max_length"] == 256 and not enc.needs_internet
    assert create_encoder("bert").options["max_length"] == 512


def test_random_mode_tokenizer_covers_ascii():
    from extract.encoders.hf_text import tiny_tokenizer

    tok = tiny_tokenizer()
    ids = tok(TEXTS + ["Zorro's 1999 caper: $5M, 100% fun!"])["input_ids"]
    assert all(tok.unk_token_id not in row for row in ids)
    assert all(row[0] == tok.cls_token_id and row[-1] == tok.sep_token_id for row in ids)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet-lite0"])
def test_batchnorm_folding_keeps_features(name):
    """The BN-folded inference copy gives the unfolded network's features (and trained-mode
    BN statistics are not the identity, so the fold really changes the weights)."""
    x = torch.randn(2, 3, 64, 64)
    outs = []
    for fold in (True, False):
        enc = create_encoder(name, weights="random", options={"fold_bn": fold})
        enc.build(CPU)
        for mod in enc.model.modules():  # non-trivial statistics, identical for both builds
            if isinstance(mod, torch.nn.BatchNorm2d):
                g = torch.Generator().manual_seed(mod.num_features)
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
        if fold:
            from extract.encoders.torchvision_cnn import fold_batchnorm
            import copy

            enc._net = fold_batchnorm(copy.deepcopy(enc.model))
            assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc._net.modules())
        with torch.inference_mode():
            outs.append(enc.encode(x).features)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)
