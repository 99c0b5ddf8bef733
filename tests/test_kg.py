"""The `kg` metadata encoder: the graph (genre links from train only), eq. 6 by hand, PyKEEN
training (shapes, determinism), pooling, masking, and that test labels reach no feature."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from extract.encoders import create_encoder
from extract.encoders.kg_graph import at_label, at_label_stats, build_triples, degrees

ROWS = [{"director": ["D1"], "cast": ["A1", "A2"]},
        {"director": ["D1"], "cast": ["A2"]},
        {"director": ["D2"], "cast": ["A3"]},
        {"director": [], "cast": ["Nobody"]}]
LABELS = [["Drama"], ["Drama", "Comedy"], None, None]  # rows 2 and 3 are dev/test: no labels


def test_movie_schema_takes_genre_links_from_train_rows_only() -> None:
    t = build_triples(ROWS, LABELS, ["director", "cast"], "movie")
    genre_heads = {h for h, r, _ in t if r == "has_genre"}
    assert genre_heads == {"movie:0", "movie:1"}
    assert ("movie:2", "has_director", "director:D2") in t  # dev/test movies keep their own entities
    paper = build_triples(ROWS, LABELS, ["director", "cast"], "paper")
    assert {r for _, r, _ in paper} == {"d-t", "c-t", "g-t", "d-c", "d-g", "c-g"}  # eq. 2
    assert not any("D2" in h or "A3" in t_ for h, _, t_ in paper)  # train movies only
    assert ("director:D1", "d-g", "genre:Comedy") in paper


def test_attention_teacher_pseudo_label_eq6_by_hand() -> None:
    t = build_triples(ROWS, LABELS, ["director", "cast"], "movie")
    deg = degrees(t)
    # degrees: D1 in movies 0, 1 -> 2; A1 -> 1; A2 -> 2
    assert (deg["director:D1"], deg["cast:A1"], deg["cast:A2"]) == (2, 1, 2)
    mean_n, mean_v = at_label_stats(ROWS, LABELS, ["director", "cast"], deg)
    # train movies: N = 3 and 2 (mean 2.5); V = 2+1+2 = 5 and 2+2 = 4 (mean 4.5)
    assert (mean_n, mean_v) == (2.5, 4.5)
    # movie 0: 3 * 5 / ((3 + 2.5) * (5 + 4.5)) = 15 / 52.25
    assert at_label(ROWS[0], ["director", "cast"], deg, mean_n, mean_v) == pytest.approx(15 / 52.25)
    assert at_label({"director": [], "cast": []}, ["director", "cast"], deg, mean_n, mean_v) == 0.0


def _fit(labels: list, **opts) -> object:
    enc = create_encoder("kg", options={"dim": 8, "epochs": 3, "batch_size": 8, "fields": ["director", "cast"],
                                        **opts})
    enc.fit_meta(ROWS, labels)
    enc.load(torch.device("cpu"))
    return enc


def test_embeddings_shapes_determinism_and_test_labels_reach_nothing() -> None:
    a, b = _fit(LABELS), _fit(LABELS)
    fa, fb = a.encode(ROWS), b.encode(ROWS)
    assert fa.features.shape == (4, 8) and fa.aux["at_label"].shape == (4,)
    assert torch.equal(fa.features, fb.features)  # same seed, same embeddings
    # row 3's only actor is in the graph as an entity of its own movie: it has a vector
    assert not (fa.features == 0).all(1).any()
    other = _fit(LABELS, seed=1).encode(ROWS)
    assert not torch.equal(other.features, fa.features)
    # the metadata encoder never sees dev/test labels: what it is given for them is None
    extras = a.label_extras(["Drama", "Comedy", "Horror"])["genre_embeddings"]
    assert extras.shape == (3, 8) and np.isnan(extras[2]).all() and not np.isnan(extras[:2]).any()


def test_sum_vs_mean_pooling_and_unknown_movies() -> None:
    s, m = _fit(LABELS), _fit(LABELS, pool="mean")
    one = [{"director": ["D1"], "cast": ["A1", "A2"]}]
    e = s._state
    vecs = e["emb"][[e["index"][k] for k in ("director:D1", "cast:A1", "cast:A2")]]
    assert np.allclose(s.encode(one).features[0].numpy(), vecs.sum(0), atol=1e-6)  # eq. 4: the sum
    assert np.allclose(m.encode(one).features[0].numpy(), vecs.mean(0), atol=1e-6)
    unknown = s.encode([{"director": ["Stranger"], "cast": []}])
    assert (unknown.features == 0).all() and s.empty_rows(unknown.features).all()  # masked by extract


@pytest.mark.parametrize("model", ["rotate", "transe", "transh", "complex"])
def test_every_translation_model_trains(model: str) -> None:
    enc = _fit(LABELS, model=model, epochs=1)
    assert enc.encode(ROWS[:2]).features.shape == (2, 8)


def test_kg_option_errors() -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        create_encoder("kg", options={"model": "conve"})
    with pytest.raises(ValueError, match="even dim"):
        create_encoder("kg", options={"dim": 7})
    with pytest.raises(ValueError, match="schema=movie"):
        create_encoder("kg", options={"schema": "paper", "pool_fields": ["keywords"]})
    with pytest.raises(ValueError, match="no train rows"):
        create_encoder("kg", options={"dim": 8}).fit_meta(ROWS, [None] * 4)
