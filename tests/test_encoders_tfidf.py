"""The TF-IDF encoder: fitted on train texts only, restored from the cache's extra_state."""
from __future__ import annotations


import pytest
import torch

from extract.encoders import create_encoder
from tests.tiny_encoders import CPU, TEXTS, TRAIN_TEXTS, encode, make_encoder

def test_tfidf_fit_dim_and_state():
    enc = create_encoder("tfidf")  # defaults: word 1-2 grams, min_df 2
    with pytest.raises(ValueError, match="fit"):
        enc.dim
    with pytest.raises(ValueError, match="fit"):
        enc.load(CPU)
    enc.fit(TRAIN_TEXTS)
    enc.load(CPU)
    vocab = enc._vectorizer.vocabulary_
    assert enc.dim == len(vocab) and "killer" in vocab and "serial" not in vocab  # min_df=2
    f = encode(enc, TEXTS + ["zebra quantum"]).features
    assert f.shape == (4, enc.dim)
    assert torch.allclose(f[:3].norm(dim=-1), torch.ones(3), atol=1e-5)
    assert (f[3] == 0).all()  # words never seen in training give an empty row
    restored = create_encoder("tfidf")
    restored.load_extra_state(enc.extra_state())
    assert torch.equal(encode(restored, TEXTS).features, f[:3])
    char = make_encoder("tfidf", options={"analyzer": "char_wb", "ngram_range": [2, 3]})
    assert char.dim > enc.dim


def test_tfidf_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="analyzer"):
        create_encoder("tfidf", options={"analyzer": "sentence"})
    with pytest.raises(ValueError, match="ngram_range"):
        create_encoder("tfidf", options={"ngram_range": [2, 1]})
    sd = tmp_path / "x.pt"
    torch.save({}, sd)
    with pytest.raises(ValueError, match="state-dict"):
        create_encoder("tfidf", state_dict=sd)


