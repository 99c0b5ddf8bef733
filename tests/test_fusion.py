"""Tests for every registered fusion head (train_heads/fusion): shapes, gradients, masks,
token inputs, missing modalities, learnability on a toy problem, the GMU gate experiment."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from train_heads.fusion import FUSIONS, create_fusion, list_fusions

torch.set_num_threads(1)

DIMS = {"image": 24, "text": 16}
C = 5
HEADS = list_fusions()


def _kw(name: str, small: bool = False, **extra) -> dict:
    """Head kwargs: modality="image" for unimodal heads; small sizes where the head has them."""
    params = inspect.signature(FUSIONS[name].__init__).parameters
    kw = {"modality": "image"} if FUSIONS[name].min_modalities == 1 else {}
    if name == "idkg":  # its auxiliary losses need a kg cache (tests/test_idkg.py); the fusion does not
        kw.update(at_weight=0.0, contrast_weight=0.0)
    if small:
        sizes = {"hidden": 32, "d_model": 32, "clf_hidden": 32, "num_layers": 2, "dropout": 0.1}
        kw.update({k: v for k, v in sizes.items() if k in params})
    kw.update(extra)
    return kw


def _feats(b: int, gen: torch.Generator, present: dict[str, torch.Tensor] | None = None,
           tokens: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Random pooled features (+ optional tokens with padding); absent rows are zeros."""
    f: dict[str, torch.Tensor] = {}
    for m, d in DIMS.items():
        p = present[m] if present else torch.ones(b, dtype=torch.bool)
        f[m] = torch.randn(b, d, generator=gen) * p[:, None]
        f[f"{m}.present"] = p
        if tokens:
            t = 7
            lengths = torch.randint(1, t + 1, (b,), generator=gen)
            mask = (torch.arange(t)[None] < lengths[:, None]) & p[:, None]  # (B, T) with padding
            f[f"{m}.tokens"] = torch.randn(b, t, tokens[m], generator=gen) * mask[..., None]
            f[f"{m}.token_mask"] = mask
    return f


@pytest.mark.parametrize("name", HEADS)
def test_shape_defaults_and_no_nan(name: str) -> None:
    torch.manual_seed(0)
    head = create_fusion(name, DIMS, C, **_kw(name))
    out = head(_feats(4, torch.Generator().manual_seed(0)))
    assert out.shape == (4, C)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", HEADS)
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    tok = {"image": 12, "text": 10} if FUSIONS[name].uses_tokens else None
    head = create_fusion(name, DIMS, C, token_dims=tok, **_kw(name, small=True))
    head(_feats(16, gen, tokens=tok)).sum().backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("name", HEADS)
def test_missing_modalities_no_nan(name: str) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    present = {"image": torch.tensor([True, False, True, False]),
               "text": torch.tensor([True, True, False, False])}  # row 3: nothing present
    tok = {"image": 12, "text": 10} if FUSIONS[name].uses_tokens else None
    for token_dims in ([None, tok] if tok else [None]):
        head = create_fusion(name, DIMS, C, token_dims=token_dims, **_kw(name, small=True))
        for train in (True, False):
            head.train(train)
            out = head(_feats(4, gen, present, tokens=token_dims))
            assert out.shape == (4, C) and torch.isfinite(out).all(), (name, token_dims, train)
            if train:
                out.sum().backward()
                assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", [n for n in HEADS if FUSIONS[n].uses_tokens])
def test_token_heads_use_tokens_and_padding(name: str) -> None:
    torch.manual_seed(0)
    tok = {"image": 12, "text": 10}
    head = create_fusion(name, DIMS, C, token_dims=tok, **_kw(name, small=True)).eval()
    f = _feats(6, torch.Generator().manual_seed(3), tokens=tok)
    out = head(f)
    assert out.shape == (6, C) and torch.isfinite(out).all()
    # Changing padded token positions must not change the output; changing a real token must.
    g = dict(f)
    junk = torch.randn_like(f["text.tokens"]) * 9
    g["text.tokens"] = torch.where(f["text.token_mask"][..., None], f["text.tokens"], junk)
    torch.testing.assert_close(head(g), out)
    g["text.tokens"] = f["text.tokens"].clone()
    g["text.tokens"][:, 0] += 3.0 * torch.randn(10)  # (not a constant shift: LayerNorm removes those)
    assert not torch.allclose(head(g), out)


def test_unimodal_modality_selection() -> None:
    for name in [n for n in HEADS if FUSIONS[n].min_modalities == 1]:
        with pytest.raises(ValueError, match="image"):
            create_fusion(name, DIMS, C)  # ambiguous: must name the choices
        with pytest.raises(ValueError, match="audio"):
            create_fusion(name, DIMS, C, modality="audio")
        head = create_fusion(name, {"text": 16}, C).eval()  # the single modality by default
        assert head.modality == "text"
        f = _feats(3, torch.Generator().manual_seed(4))
        out = head(f)
        f["image"] = f["image"] + 5.0  # other modalities are ignored
        torch.testing.assert_close(head(f), out)


def test_multimodal_heads_need_two_modalities() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        create_fusion("gmu", {"image": 24}, C)


def test_unknown_fusion_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"Unknown fusion 'gmux'.*gmu"):
        create_fusion("gmux", DIMS, C)


def test_mcam_smsam_ablation_flags() -> None:
    full, mcam, smsam = (create_fusion(n, DIMS, C, d_model=32, hidden=16)
                         for n in ("mcam_smsam", "mcam", "smsam"))
    assert (full.use_mcam, full.use_smsam, len(full.blocks)) == (True, True, 4)
    assert (mcam.use_mcam, mcam.use_smsam, len(mcam.blocks)) == (True, False, 0)
    assert (smsam.use_mcam, smsam.use_smsam, len(smsam.cross)) == (False, True, 0)
    neither = create_fusion("mcam_smsam", DIMS, C, d_model=32, hidden=16, use_mcam=False, use_smsam=False)
    assert len(neither.blocks) == 0 and len(neither.cross) == 0
    out = neither(_feats(3, torch.Generator().manual_seed(5)))
    assert out.shape == (3, C) and torch.isfinite(out).all()


def test_explain_keys() -> None:
    f = _feats(4, torch.Generator().manual_seed(6))
    f["image.present"] = torch.tensor([True, False, True, True])  # row 1: text only
    gmu = create_fusion("gmu", DIMS, C, hidden=8)
    gmu(f)
    e = gmu.explain()
    assert e["gates"].shape == (4, 8) and e["gate_mean"].shape == (4,)
    assert ((e["gates"][[0, 2, 3]] > 0) & (e["gates"][[0, 2, 3]] < 1)).all()
    assert (e["gates"][1] == 0).all()  # z weighs "image" (first in sorted order): absent -> 0
    gmu_n = create_fusion("gmu", DIMS, C, hidden=8, gate="per_modality", gate_norm="softmax")
    gmu_n(f)
    z = gmu_n.explain()["gates"]
    assert z.shape == (4, 2, 8)
    torch.testing.assert_close(z.sum(1), torch.ones(4, 8))
    assert (z[1, 0] == 0).all()
    with pytest.raises(ValueError, match="tied"):
        create_fusion("gmu", {**DIMS, "audio": 4}, C, gate="tied")
    late = create_fusion("late", DIMS, C)
    late(f)
    e = late.explain()
    assert e["alpha"].shape == (2,) and e["weights"].shape == (4, 2)
    torch.testing.assert_close(e["weights"][1], torch.tensor([0.0, 1.0]))  # only text present
    for tied, shape in ((True, (4, 2)), (False, (4, 2, C))):
        moe = create_fusion("moe", DIMS, C, tied=tied, hidden=8)
        moe(f)
        g = moe.explain()["gates"]
        assert g.shape == shape
        assert torch.allclose(g.sum(1), torch.ones(1)) and (g[1, 0] == 0).all()
    cn = create_fusion("centralnet", DIMS, C, hidden=8, layers=3, aux_heads=True)
    cn(f)
    e = cn.explain()
    assert e["alpha_modal"].shape == (3, 2) and e["alpha_central"].shape == (2,)
    assert e["branch_logits"].shape == (4, 2, C)


def test_avg_probs_is_logit_of_mean_probability() -> None:
    head = create_fusion("avg_probs", DIMS, C)
    f = _feats(4, torch.Generator().manual_seed(7))
    f["text.present"] = torch.tensor([True, True, False, True])
    p = torch.sigmoid(head(f))
    probs = head.explain()["probs"]  # (B, M, C), image first
    torch.testing.assert_close(p[[0, 1, 3]], probs[[0, 1, 3]].mean(1))
    torch.testing.assert_close(p[2], probs[2, 0])  # text absent: image alone


# ---- learnability: a toy multi-label problem needing both modalities ------------------------

STEPS, LR = 150, 1e-2  # full-batch Adam


def _toy(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Classes 0-1 depend on image dims 0-3, classes 2-3 on text dims 0-3, class 4 on both."""
    g = torch.Generator().manual_seed(seed)
    w = torch.Generator().manual_seed(123)  # the same label rule for every split
    a = F.normalize(torch.randn(4, C, generator=w), dim=0)  # (4, C)
    b = F.normalize(torch.randn(4, C, generator=w), dim=0)
    a[:, 2:4] = 0
    b[:, 0:2] = 0
    a[:, 4] /= 2 ** 0.5
    b[:, 4] /= 2 ** 0.5
    x_img, x_txt = torch.randn(n, DIMS["image"], generator=g), torch.randn(n, DIMS["text"], generator=g)
    score = x_img[:, :4] @ a + x_txt[:, :4] @ b  # (n, C), each column ~ N(0, 1)
    y = (score > 0.67).float()  # ~25% positives per class
    ones = torch.ones(n, dtype=torch.bool)
    return {"image": x_img, "text": x_txt, "image.present": ones, "text.present": ones}, y


def _train(head: torch.nn.Module, f: dict[str, torch.Tensor], y: torch.Tensor, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(steps):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(head(f), y).backward()
        opt.step()
    head.eval()


def _tuned_f1(s_dev: np.ndarray, y_dev: np.ndarray, s_te: np.ndarray, y_te: np.ndarray) -> np.ndarray:
    """Per-class test F1 at the per-class threshold that maximises dev F1 (as train-head does).

    Tuning matters for the probability-mixing heads (avg_probs, moe), whose outputs are not
    calibrated around 0 when one modality's classifier cannot see a class."""
    out = []
    for c in range(y_dev.shape[1]):
        cands = np.quantile(s_dev[:, c], np.linspace(0.02, 0.98, 49))
        best = max(cands, key=lambda t: f1_score(y_dev[:, c], s_dev[:, c] > t, zero_division=0))
        out.append(f1_score(y_te[:, c], s_te[:, c] > best, zero_division=0))
    return np.array(out)


@pytest.mark.parametrize("name", HEADS)
def test_learns_toy_multimodal_problem(name: str) -> None:
    torch.manual_seed(0)
    (f_tr, y_tr), (f_dev, y_dev), (f_te, y_te) = _toy(1000, seed=1), _toy(300, seed=2), _toy(300, seed=3)
    head = create_fusion(name, DIMS, C, **_kw(name, small=True))
    _train(head, f_tr, y_tr, steps=STEPS, lr=LR)
    with torch.no_grad():
        s_dev, s_te = head(f_dev).numpy(), head(f_te).numpy()
    f1 = _tuned_f1(s_dev, y_dev.numpy(), s_te, y_te.numpy())  # (C,) per class
    if FUSIONS[name].min_modalities == 1:  # image only: learns the image classes, not the text ones
        assert f1[:2].mean() >= 0.75, (name, f1)
        assert f1[:2].mean() - f1[2:4].mean() >= 0.3, (name, f1)
    else:  # all-positive baseline ~0.4, a head that ignores one modality <= ~0.65
        assert f1.mean() >= 0.7, (name, f1)


# ---- the GMU paper's synthetic-data experiment (Arevalo et al. 2017) ----------------------

def test_gmu_gate_tracks_informative_modality() -> None:
    """A hidden bit M picks which modality carries the class (the other one is noise); the
    learned gate z (weight of "image", the first modality) must follow M."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(8)
    n, d = 600, 8
    dims = {"image": d, "text": d}
    y = torch.randint(0, 2, (n,), generator=g)
    m = torch.randint(0, 2, (n,), generator=g).bool()  # True: image informative, text noise
    offset = torch.zeros(d)
    offset[0] = 2.0  # informative and noise inputs lie in different regions
    direction = F.normalize(torch.randn(d, generator=g), dim=0) * 1.5

    def informative() -> torch.Tensor:
        return offset + (2 * y[:, None] - 1) * direction + 0.3 * torch.randn(n, d, generator=g)

    def noise() -> torch.Tensor:
        return -offset + torch.randn(n, d, generator=g)

    x_img = torch.where(m[:, None], informative(), noise())
    x_txt = torch.where(m[:, None], noise(), informative())
    ones = torch.ones(n, dtype=torch.bool)
    f = {"image": x_img, "text": x_txt, "image.present": ones, "text.present": ones}
    head = create_fusion("gmu", dims, 1, hidden=16, dropout=0.0)
    _train(head, f, y[:, None].float(), steps=150, lr=1e-2)
    with torch.no_grad():
        acc = ((head(f)[:, 0] > 0) == y.bool()).float().mean().item()
    z = head.explain()["gate_mean"].numpy()  # (n,)
    corr = np.corrcoef(z, m.float().numpy())[0, 1]
    assert acc >= 0.9, acc
    assert corr >= 0.9, corr
