"""`extract --upto last:N`: a cache of the activations entering the first of the last N blocks
(the frozen prefix of a partial fine-tuning run), float32, read back by the normal cache code."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cache.features import load_features
from cache.read import open_info, read_arrays
from extract.datasets import DatasetConfig, load_dataset
from extract.images import OK, load_image
from extract.records import is_blank
from tests.cli_helpers import run_ok, run_refused
from tests.tiny_encoders import CPU, TINY_BERT, make_encoder

LIMIT = 8


def _extract(data, out, encoder: str, *extra) -> str:
    return run_ok(["extract", "--data", data, "--encoder", encoder, "--weights", "random", "--out", out,
                   "--workers", "0", "--batch-size", "5", "--limit", LIMIT, *extra])


def _only_cache(out, exclude=()):
    found = [p for p in out.glob("*.h5") if p not in exclude]
    assert len(found) == 1, found
    return found[0]


def _rows(data):
    return load_dataset(DatasetConfig(path=data, limit=LIMIT)).records


def test_upto_text_cache_holds_the_prefix_state(tiny_data, tmp_path):
    bert = ["-o", f"config={json.dumps(TINY_BERT)}", "-o", "max_length=16"]
    out = _extract(tiny_data, tmp_path, "bert", *bert, "--upto", "last:1")
    assert "x 32 dims" in out
    path = _only_cache(tmp_path)
    info = open_info(path)
    assert info.attrs["upto"] == "last:1" and info.attrs["upto_block"] == 1 and info.attrs["n_blocks"] == 2
    a = read_arrays(info, ["ids", "features", "tokens", "token_mask", "present"])
    assert a["tokens"].dtype == np.float32 and a["features"].dtype == np.float32  # --dtype float16 ignored
    assert a["tokens"].shape[1] == 16  # padded to max_length, as --tokens

    enc = make_encoder("bert")  # the same tiny random model (build() seeds it)
    enc.build(CPU)
    trunk = enc.trunk()
    rows = _rows(tiny_data)
    assert list(a["ids"]) == [r.id for r in rows]
    keep = [i for i, r in enumerate(rows) if not is_blank(r.texts.get("plot", ""))]
    assert 0 < len(keep) < LIMIT and a["present"][keep].all() and not a["token_mask"][~a["present"]].any()
    with torch.no_grad():
        tok, mask = trunk.to_tokens(trunk.prefix(enc.collate([rows[i].texts["plot"] for i in keep]), 1))
    L = tok.shape[1]
    assert np.array_equal(a["token_mask"][keep, :L], mask.numpy()) and not a["token_mask"][:, L:].any()
    assert np.allclose(a["tokens"][keep, :L], tok.numpy(), atol=1e-5)
    m = mask.unsqueeze(-1).float()
    assert np.allclose(a["features"][keep], ((tok * m).sum(1) / m.sum(1)).numpy(), atol=1e-5)  # real-token mean

    # the features code reads it like any token cache
    fs = load_features({"text": path}, tokens=True)
    assert fs.tokens["text"].shape == (LIMIT, 16, 32) and fs.X["text"].shape == (LIMIT, 32)

    # the same settings without --upto: another file, whose settings carry no `upto` key
    _extract(tiny_data, tmp_path, "bert", *bert)
    plain = _only_cache(tmp_path, exclude=[path])
    assert plain.name != path.name
    assert "upto" not in open_info(plain).attrs["config"]["settings"]
    assert open_info(plain).attrs.get("upto") is None


def test_upto_image_cache_holds_the_prefix_map(tiny_data, tmp_path):
    """EfficientNet-Lite0, last:2 = stages 6 and 7 train: the cache holds the 14x14x112 map
    entering stage 6 (k = 5), computed by the unfolded model."""
    _extract(tiny_data, tmp_path, "efficientnet-lite0", "--upto", "last:2")
    info = open_info(_only_cache(tmp_path))
    assert info.attrs["upto_block"] == 5 and info.attrs["n_blocks"] == 7
    a = read_arrays(info, ["features", "tokens", "token_mask", "present"])
    assert a["tokens"].shape[1:] == (196, 112) and a["features"].shape == (LIMIT, 112)

    enc = make_encoder("efficientnet-lite0")
    enc.build(CPU)
    trunk = enc.trunk()
    rows = _rows(tiny_data)
    keep = [i for i, r in enumerate(rows) if r.image is not None and load_image(r.image)[0] == OK]
    assert keep and a["present"][keep].all()
    batch = enc.collate([enc.preprocess(load_image(rows[i].image)[1]) for i in keep])
    with torch.no_grad():
        tok, _ = trunk.to_tokens(trunk.prefix(batch, 5))
    assert np.allclose(a["tokens"][keep], tok.numpy(), atol=1e-5)
    assert a["token_mask"][keep].all()
    assert np.allclose(a["features"][keep], tok.mean(1).numpy(), atol=1e-5)
    # continuing from the cached state gives the encoder's features
    state = trunk.from_tokens(torch.from_numpy(a["tokens"][keep]), torch.from_numpy(a["token_mask"][keep]))
    with torch.no_grad():
        assert torch.allclose(trunk(state=state, start=5), enc.encode(batch).features, atol=1e-4)


@pytest.mark.parametrize("extra,expect", [
    (["--upto", "last:1", "--tokens"], "drop --tokens"),
    (["--upto", "none"], "nothing to cache"),
    (["--upto", "all"], "nothing is frozen"),
    (["--upto", "first:2"], "give last:N"),
])
def test_upto_refusals_are_one_line(tiny_data, tmp_path, extra, expect):
    run_refused(["extract", "--data", tiny_data, "--encoder", "resnet18", "--weights", "random",
                 "--out", tmp_path, "--workers", "0", "--limit", LIMIT, *extra], expect)
    assert not list(tmp_path.iterdir())


def test_upto_refused_before_writing_for_too_many_blocks_and_no_trunk(tiny_data, tmp_path):
    base = ["extract", "--data", tiny_data, "--out", tmp_path, "--workers", "0", "--limit", LIMIT]
    run_refused(base + ["--encoder", "resnet18", "--weights", "random", "--upto", "last:5"],
                "--upto 'last:5'", "4 blocks")
    run_refused(base + ["--encoder", "tfidf", "-o", "min_df=1", "--upto", "last:1"],
                "'tfidf' cannot be fine-tuned")
    assert not list(tmp_path.glob("*.h5")) and not [p for p in tmp_path.rglob("*") if p.is_file()]
