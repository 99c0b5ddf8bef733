"""The from-scratch encoders `lstm` and `cnn` (extract/encoders/scratch*.py): registry, refusals,
vocabulary, attention pooling against hand-computed values, trunk == encode, and that each
LEARNS a toy problem end to end and reloads from its state dict with identical features."""
from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from extract.encoders import ENCODERS, create_encoder, list_encoders
from extract.encoders.scratch import check_extractable

CPU = torch.device("cpu")
TINY_LSTM = {"embed_dim": 8, "hidden": 6, "max_length": 12}
TRAIN = ["The killer kills the killer.", "A city of love; the CITY!", "killer's love"]


def lstm(options: dict | None = None, texts: list[str] = TRAIN, **kw) -> object:
    enc = create_encoder("lstm", options={**TINY_LSTM, **(options or {})}, **kw)
    enc.fit(texts)
    enc.build(CPU)
    return enc


def cnn(options: dict | None = None, **kw) -> object:
    enc = create_encoder("cnn", options={"size": 32, "channels": [4, 8, 8, 16], **(options or {})}, **kw)
    enc.build(CPU)
    return enc


def feats(enc, batch) -> torch.Tensor:
    with torch.inference_mode():
        return enc.encode(batch).features


# ---- registry and refusals ------------------------------------------------------------
def test_registered_listed_and_marked():
    assert {"lstm", "cnn"} <= set(list_encoders())
    for name, modality in (("lstm", "text"), ("cnn", "image")):
        cls = ENCODERS[name]
        assert cls.modality == modality and cls.from_scratch and not cls.needs_internet
        assert cls.default_weights == "random"
    assert ENCODERS["lstm"].needs_fit and not ENCODERS["cnn"].needs_fit
    assert not ENCODERS["resnet18"].from_scratch


def test_extract_without_state_dict_is_refused(tmp_path):
    for name in ("lstm", "cnn"):
        with pytest.raises(ValueError) as e:
            check_extractable(ENCODERS[name], None)
        assert str(e.value) == (f"encoder {name!r} is trained from scratch: its random init gives meaningless "
                                "features; train it with `finetune` and pass its exported --state-dict")
        check_extractable(create_encoder(name), tmp_path / "trained.pt")  # with one: fine
    check_extractable(ENCODERS["resnet18"], None)  # pretrained encoders need none
    create_encoder("lstm")  # finetune builds them without a state dict: no refusal there


@pytest.mark.parametrize("name,options,match", [
    ("lstm", {"tokenizer": "bpe"}, r"tokenizer must be one of \['words', 'whitespace'\]"),
    ("lstm", {"pooling": "max"}, r"pooling must be one of \['attention', 'last', 'mean'\]"),
    ("lstm", {"hidden": 0}, "option hidden must be an integer >= 1"),
    ("lstm", {"dropout": 1.0}, r"option dropout must be a number in \[0, 1\)"),
    ("lstm", {"pooling": "mean", "attn_dim": 8}, "attn_dim applies to pooling=attention only"),
    ("cnn", {"channels": [8, 0]}, "channels must be a list of positive integers"),
    ("cnn", {"size": 16}, "size 16 is too small for 4 blocks"),
])
def test_bad_options_name_the_option(name, options, match):
    with pytest.raises(ValueError, match=match):
        create_encoder(name, options=options)


@pytest.mark.parametrize("name", ["lstm", "cnn"])
def test_weights_only_random(name):
    with pytest.raises(ValueError, match=r"no pretrained weights: --weights must be 'random'.*--state-dict"):
        create_encoder(name, weights="IMAGENET1K_V1")


# ---- lstm: vocabulary -----------------------------------------------------------------
def test_vocabulary_by_hand():
    """Counts in TRAIN: the 3; killer, city, love 2; a, killer's, kills, of 1 (lowercased words)."""
    enc = create_encoder("lstm", options=TINY_LSTM)
    with pytest.raises(ValueError, match="fit"):
        enc.load(CPU)
    enc.fit(TRAIN)
    assert enc.tokenizer.itos == ["<pad>", "<unk>", "the", "city", "killer", "love"]  # min_count 2
    assert enc.collate(["The killer dances", ""])["input_ids"].tolist() == [[2, 4, 1], [0, 0, 0]]
    assert enc.collate(["The killer dances", ""])["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 0]]
    one = create_encoder("lstm", options={"min_count": 1})
    one.fit(TRAIN)
    assert one.tokenizer.itos[2:] == ["the", "city", "killer", "love", "a", "killer's", "kills", "of"]
    capped = create_encoder("lstm", options={"max_size": 2})
    capped.fit(TRAIN)
    assert capped.tokenizer.itos == ["<pad>", "<unk>", "the", "city"]
    ws = create_encoder("lstm", options={"tokenizer": "whitespace", "min_count": 1})
    ws.fit(["the city. the city"])  # the paper's split: punctuation stays on the word
    assert ws.tokenizer.itos[2:] == ["the", "city", "city."]
    short = create_encoder("lstm", options={"max_length": 2})
    short.fit(TRAIN)
    assert short.collate(["the city love"])["input_ids"].tolist() == [[2, 3]]  # the first max_length
    with pytest.raises(ValueError, match="no word occurs 2"):
        create_encoder("lstm").fit(["every word once"])


def test_extra_state_round_trip_gives_identical_ids_and_features():
    enc = lstm()
    texts = ["the killer loves the city", "unknown words", "Love, love, LOVE"]
    restored = create_encoder("lstm", options=TINY_LSTM)
    restored.load_extra_state(enc.extra_state())
    a, b = enc.collate(texts), restored.collate(texts)
    assert all(torch.equal(a[k], b[k]) for k in a)
    restored.build(CPU)
    assert torch.equal(feats(restored, b), feats(enc, a))  # same seeded init, same ids
    other = create_encoder("lstm", options={**TINY_LSTM, "tokenizer": "whitespace"})
    with pytest.raises(ValueError, match="tokenizer='words'"):
        other.load_extra_state(enc.extra_state())


# ---- lstm: shapes, trunk, attention ---------------------------------------------------
def test_lstm_shapes_trunk_and_empty_text():
    enc = lstm({"layers": 3})
    batch = enc.collate(["the killer", "city of love and the killer", "..."])
    with torch.inference_mode():
        out = enc.encode(batch, tokens=True)
    assert out.features.shape == (3, 12) and enc.dim == 12  # 2 * hidden
    assert out.tokens.shape == (3, 12, 12) and out.token_mask.sum(1).tolist() == [2, 6, 0]
    assert (out.features[2] == 0).all() and enc.empty_rows(out.features).tolist() == [False, False, True]
    trunk = enc.trunk()
    assert trunk.n_blocks == 3 and list(trunk.stem) == [enc.model.embedding] and list(trunk.tail) == [enc.model.pool]
    with torch.no_grad():
        assert torch.equal(trunk(batch), out.features)
        state = trunk.prefix(batch, 1)  # block by block = all at once
        assert torch.equal(trunk(state=state, start=1), out.features)


def test_attention_pool_against_hand_values():
    """Eq. 3.7-3.9 with W = I, v = (1, 1): e_t = tanh(h_t1) + tanh(h_t2); the padded third
    state (9, 9) must get weight 0."""
    enc = lstm()
    pool = type(enc.model.pool)("attention", 2, 2)
    with torch.no_grad():
        pool.W.weight.copy_(torch.eye(2))
        pool.v.weight.copy_(torch.ones(1, 2))
    h = torch.tensor([[[0.5, 0.0], [0.0, 1.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])
    e1, e2 = math.tanh(0.5), math.tanh(1.0)
    a1 = math.exp(e1) / (math.exp(e1) + math.exp(e2))  # 0.4257
    with torch.no_grad():
        alpha = pool.weights(h, mask)
        out = pool(h, mask)
    assert torch.allclose(alpha, torch.tensor([[a1, 1 - a1, 0.0]]), atol=1e-6)
    assert torch.allclose(out, torch.tensor([[0.5 * a1, 1 - a1]]), atol=1e-6)


def test_attention_ignores_padding_and_batch_neighbours():
    enc = lstm({"layers": 2})
    batch = enc.collate(["killer city", "the city of love the killer"])
    ref = feats(enc, batch)
    with torch.no_grad():
        state = enc.trunk().prefix(batch, enc.trunk().n_blocks)
        alpha = enc.model.pool.weights(state["h"], state["mask"])
    assert torch.allclose(alpha.sum(1), torch.ones(2)) and (alpha[0, 2:] == 0).all() and (alpha[0, :2] > 0).all()
    poked = {k: v.clone() for k, v in batch.items()}
    poked["input_ids"][0, 2:] = 4  # a real word at row 0's padded positions (mask still 0)
    assert torch.equal(feats(enc, poked), ref)
    alone = feats(enc, enc.collate(["killer city"]))
    assert torch.allclose(alone[0], ref[0], atol=1e-6)


def test_last_and_mean_pooling_by_hand():
    h = torch.arange(24, dtype=torch.float32).view(2, 3, 4)  # hidden 2: fwd h[..., :2], bwd h[..., 2:]
    mask = torch.tensor([[True, True, False], [True, True, True]])
    pool_cls = type(lstm().model.pool)
    last = pool_cls("last", 4, 4)(h, mask)
    assert last.tolist() == [[4.0, 5.0, 2.0, 3.0], [20.0, 21.0, 14.0, 15.0]]  # fwd at the last real token, bwd at 0
    mean = pool_cls("mean", 4, 4)(h, mask)
    assert mean.tolist() == [[2.0, 3.0, 4.0, 5.0], [16.0, 17.0, 18.0, 19.0]]


# ---- cnn: the paper's shape -----------------------------------------------------------
def test_cnn_paper_defaults_by_hand():
    """224 -> 7x7 map of 512 channels; parameters: convs 3*64*49 + 64*128*9 + 128*256*9 +
    256*512*9 = 1,557,696 (no bias), BatchNorm 2 * (64+128+256+512) = 1,920."""
    enc = create_encoder("cnn", options={"fold_bn": False})
    enc.build(CPU)
    assert enc.image_preprocess().crop == 224 and enc.options["resize"] == "squash"
    assert sum(p.numel() for p in enc.model.parameters()) == 1_557_696 + 1_920
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        out = enc.encode(x, tokens=True)
    assert out.features.shape == (1, 512) and out.tokens.shape == (1, 49, 512)
    with torch.no_grad():
        assert torch.equal(enc.trunk()(x), out.features)


def test_cnn_trunk_blocks_and_bn_folding():
    folded = cnn()  # fold_bn default: encode runs a BN-folded copy
    x = torch.randn(3, 3, 32, 32)
    ref = feats(folded, x)
    assert ref.shape == (3, 16) and folded.dim == 16
    trunk = folded.trunk()
    assert trunk.n_blocks == 4 and trunk.spatial and len(trunk.stem) == 0 and len(trunk.tail) == 0
    with torch.no_grad():
        assert torch.allclose(trunk(x), ref, atol=1e-5)
        assert torch.equal(trunk(x), feats(folded, x))  # after trunk(): encode runs the live model


# ---- both: learn a toy problem end to end, reload the trained weights ------------------
def _train(trunk: nn.Module, dim: int, inputs, y: torch.Tensor, steps: int, lr: float) -> tuple[nn.Module, list[float]]:
    """Encoder trunk + linear layer, Adam on BCE; `inputs(idx)` gives a batch. Returns head, losses."""
    torch.manual_seed(0)
    head = nn.Linear(dim, 1)
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=lr)
    trunk.train()
    losses, gen = [], torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (32,), generator=gen)
        loss = nn.functional.binary_cross_entropy_with_logits(head(trunk(inputs(idx))).squeeze(1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    trunk.eval()
    return head, losses


def _accuracy(head: nn.Module, f: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((head(f).squeeze(1) > 0).float() == y).float().mean())


def _keyword_texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """Random word sequences; label 1 when "gold" appears anywhere in them."""
    rng = random.Random(seed)
    texts, y = [], []
    for _ in range(n):
        words = [f"w{rng.randrange(20)}" for _ in range(rng.randint(3, 9))]
        label = rng.random() < 0.5
        if label:
            words.insert(rng.randrange(len(words) + 1), "gold")
        texts.append(" ".join(words))
        y.append(float(label))
    return texts, torch.tensor(y)


def test_lstm_learns_a_keyword_and_reloads(tmp_path):
    train, y = _keyword_texts(256, 0)
    test, y_test = _keyword_texts(200, 1)
    options = {"embed_dim": 16, "hidden": 16, "layers": 1, "max_length": 16, "dropout": 0.0}
    enc = lstm(options, texts=train)
    batch = enc.collate(train)
    head, losses = _train(enc.trunk(), enc.dim, lambda i: {k: v[i] for k, v in batch.items()}, y, 40, 0.02)
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    test_batch = enc.collate(test)
    f = feats(enc, test_batch)
    assert _accuracy(head, f, y_test) > 0.9  # unseen sequences
    path = tmp_path / "lstm.pt"
    torch.save(enc.model.state_dict(), path)
    again = lstm(options, texts=train, state_dict=path)  # refit on the same train texts: the same ids
    assert torch.equal(feats(again, test_batch), f)
    other_vocab = r"trained on another vocabulary \(23 ids\) than the one fitted here \(6 ids\)"
    with pytest.raises(ValueError, match=other_vocab):
        lstm(options, texts=TRAIN, state_dict=path)


def _region_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 grey noise; the top-left 12x12 square is bright red (label 1) or dark blue (0)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 32, 32, generator=gen).expand(n, 3, 32, 32).clone()
    y = (torch.rand(n, generator=gen) < 0.5).float()
    patch = torch.where(y.view(n, 1, 1, 1).bool(), torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1),
                        torch.tensor([0.0, 0.0, 0.3]).view(1, 3, 1, 1))
    x[:, :, :12, :12] = patch
    return x, y


def test_cnn_learns_a_region_colour_and_reloads(tmp_path):
    x, y = _region_images(256, 0)
    x_test, y_test = _region_images(200, 1)
    enc = cnn()
    head, losses = _train(enc.trunk(), enc.dim, lambda i: x[i], y, 40, 0.01)
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    f = feats(enc, x_test)  # eval mode: BatchNorm running statistics
    assert _accuracy(head, f, y_test) > 0.9
    path = tmp_path / "cnn.pt"
    torch.save(enc.model.state_dict(), path)
    exact = cnn({"fold_bn": False}, state_dict=path)
    assert torch.equal(feats(exact, x_test), f)
    assert torch.allclose(feats(cnn(state_dict=path), x_test), f, atol=1e-4)  # BN folded for extraction
