"""Missing modalities: the rows chosen by `evaluate --missing`, the evaluation itself, and
`train-head --modality-dropout`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from train_heads.config import HeadConfig
from train_heads.missing import choose_missing, drop_modalities, mask_rows, parse_spec
from train_heads.runs import train_and_write
from tests.cli_helpers import run_ok, run_refused

MODS = ["image", "text"]


def test_rows_are_seeded_nested_and_both_is_disjoint() -> None:
    a = choose_missing(100, "text", 0.3, MODS, seed=0)["text"]
    assert len(a) == 30 and np.array_equal(a, choose_missing(100, "text", 0.3, MODS, seed=0)["text"])
    assert not np.array_equal(a, choose_missing(100, "text", 0.3, MODS, seed=1)["text"])
    assert set(a) <= set(choose_missing(100, "text", 0.6, MODS, seed=0)["text"])  # nested in the ratio
    both = choose_missing(100, "both", 0.5, MODS, seed=0)
    assert len(both["image"]) == len(both["text"]) == 25 and not set(both["image"]) & set(both["text"])
    three = choose_missing(90, "all", 0.3, ["a", "b", "c"], seed=0)
    assert [len(v) for v in three.values()] == [9, 9, 9]


@pytest.mark.parametrize("spec, msg", [("text", "give"), ("audio:0.5", "has modalities"), ("text:1.5", "[0, 1]"),
                                       ("text:x", "numbers"), ("both:0.5", None)])
def test_spec_parsing(spec: str, msg: str | None) -> None:
    if msg is None:
        assert parse_spec(spec, MODS) == ("both", [0.5])
        with pytest.raises(ValueError, match="two modalities"):
            parse_spec(spec, ["a", "b", "c"])
        return
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(spec, MODS)


def _feats(b: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    f = {m: torch.randn(b, 3, generator=g) + 1.0 for m in MODS}
    f |= {f"{m}.present": torch.ones(b, dtype=torch.bool) for m in MODS}
    f["text.present"][:4] = False  # already missing
    f["text"][:4] = 0
    return f


def test_masking_and_training_dropout_feed_rows_like_missing_ones() -> None:
    f = _feats()
    m = mask_rows(f, {"image": np.array([5, 6])})
    assert not m["image.present"][[5, 6]].any() and (m["image"][[5, 6]] == 0).all()
    assert m["image.present"].sum() == 62 and torch.equal(m["text"], f["text"])
    g = torch.Generator().manual_seed(3)
    d = drop_modalities(f, MODS, 0.6, g)
    kept = torch.stack([d[f"{k}.present"] for k in MODS], 1)
    assert kept.any(1).all()  # no row loses every modality
    assert not d["text.present"][:4].any()  # rows already missing stay missing
    assert ((~d["image.present"]) & f["image.present"]).any()  # something was dropped
    for k in MODS:
        assert (d[k][~d[f"{k}.present"]] == 0).all()
    again = drop_modalities(f, MODS, 0.6, torch.Generator().manual_seed(3))
    assert torch.equal(again["image.present"], d["image.present"])


def test_evaluate_missing_on_a_known_case(tiny_caches: dict, tmp_path: Path) -> None:
    feats = {m: str(tiny_caches[m]) for m in MODS}
    run, metrics = train_and_write(HeadConfig(features=feats, fusion="avg_probs", max_epochs=4, out=str(tmp_path)),
                                   progress=False)
    out = run_ok(["evaluate", run, "--missing", "text:0,1", "--missing", "both:0.4", "--out", tmp_path / "m",
                  "--plot", tmp_path / "m" / "curve.png"])
    res = json.loads(next((tmp_path / "m" / run.name).glob("*.json")).read_text())
    r0, r1 = res["results"][0], res["results"][1]
    assert r0["metrics"]["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"], abs=1e-12)  # ratio 0 = the run
    assert r1["rows_missing"]["text"] == res["n_rows"] and (tmp_path / "m" / "curve.png").is_file()
    assert r1["metrics"]["macro_f1"] != r0["metrics"]["macro_f1"]
    # a known case: a head that reads the image only does not change when every text is missing
    image_only, m_img = train_and_write(HeadConfig(features=feats, fusion="mlp", fusion_kw={"modality": "image"},
                                                   max_epochs=3, out=str(tmp_path)), progress=False)
    img = run_ok(["evaluate", image_only, "--missing", "image:1", "--out", tmp_path / "m2"])
    assert "| image | 1.00 |" in img
    from predict.missing_eval import evaluate_missing
    with pytest.raises(ValueError, match="has modalities"):
        evaluate_missing(image_only, ["text:1"])  # it reads no text: refused, not a silent no-op
    assert "| text | 1.00 |" in out and res["results"][2]["kind"] == "both"
    ids = res["results"][2]["missing_ids"]
    assert len(ids["image"]) and not set(ids["image"]) & set(ids["text"])
    run_refused(["evaluate", run, "--missing", "audio:0.5"], "has modalities")
    # saved in the run folder by default, and `report` draws it
    run_ok(["evaluate", run, "--missing", "image:0,0.5"])
    rep = run_ok(["report", run, "--out", tmp_path / "rep"])
    assert "missing_modalities" in rep and (tmp_path / "rep" / "missing_modalities.png").is_file()


def test_modality_dropout_trains_differently_deterministically_and_is_off_by_default(
        tiny_caches: dict, tmp_path: Path) -> None:
    feats = {m: str(tiny_caches[m]) for m in MODS}
    base = HeadConfig(features=feats, fusion="concat", max_epochs=2, out=str(tmp_path))
    assert "modality_dropout" not in base.settings()  # off: the settings hash of older runs is unchanged
    on = HeadConfig(features=feats, fusion="concat", max_epochs=2, modality_dropout=0.5, out=str(tmp_path))
    assert on.settings()["modality_dropout"] == 0.5 and on.key({}) != base.key({})
    p0, _ = train_and_write(base, progress=False)
    p1, _ = train_and_write(on, progress=False)
    on2 = HeadConfig(features=feats, fusion="concat", max_epochs=2, modality_dropout=0.5, out=str(tmp_path / "b"))
    p2, _ = train_and_write(on2, progress=False)
    w = [torch.load(p / "head.pt", weights_only=False)["state_dict"] for p in (p0, p1, p2)]
    first = next(iter(w[0]))
    assert not torch.equal(w[0][first], w[1][first]) and torch.equal(w[1][first], w[2][first])
    with pytest.raises(ValueError, match="--modality-dropout"):
        HeadConfig(features=feats, fusion="concat", modality_dropout=1.0)
