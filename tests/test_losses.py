"""Losses: each against a value computed here with numpy from the paper's formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from train_heads.losses import (LOSSES, create_loss, list_losses, needs_pos_weight,
                                pos_weight_from_labels)

torch.set_num_threads(1)

# A tiny batch: B=2, C=3, one easy negative (p(-4) ~ 0.018 < asl clip 0.05).
LOGITS = np.array([[2.0, -1.0, 0.5], [-4.0, 3.0, -0.3]])
TARGETS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _run(loss: torch.nn.Module, logits: np.ndarray = LOGITS, targets: np.ndarray = TARGETS) -> float:
    return float(loss(torch.tensor(logits, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)))


def _bce_np(x: np.ndarray, y: np.ndarray, w: np.ndarray | float = 1.0) -> float:
    p = _sig(x)
    return float(np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p))))


def _make(name: str, **kw):
    pw = torch.tensor([2.0, 0.5, 1.0]) if needs_pos_weight(name) else None
    return create_loss(name, pos_weight=pw, **kw)


def test_registry_lists_all_and_rejects_unknown():
    assert list_losses() == ["asl", "bce", "focal", "wbce"]
    with pytest.raises(ValueError, match=r"Unknown loss 'x'; choose from \['asl', 'bce'"):
        create_loss("x")
    with pytest.raises(ValueError, match="needs pos_weight"):
        create_loss("wbce")
    with pytest.raises(ValueError, match="does not use pos_weight"):
        create_loss("bce", pos_weight=torch.ones(3))
    with pytest.raises(ValueError, match="no option"):
        create_loss("bce", gamma=2.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        create_loss("focal", label_smoothing=1.0)


def test_bce_hand_value():
    # Row 0: -log s(2) - log(1-s(-1)) - log s(.5); row 1: -log(1-s(-4)) - log s(3) - log s(-.3)
    p = _sig(LOGITS)
    expected = -(np.log(p[0, 0]) + np.log(1 - p[0, 1]) + np.log(p[0, 2])
                 + np.log(1 - p[1, 0]) + np.log(p[1, 1]) + np.log(p[1, 2])) / 6
    assert _run(create_loss("bce")) == pytest.approx(expected, rel=1e-12)


def test_wbce_weights_only_the_positive_term():
    w = np.array([2.0, 0.5, 1.0])
    expected = _bce_np(LOGITS, TARGETS, w)
    got = _run(create_loss("wbce", pos_weight=torch.tensor(w)))
    assert got == pytest.approx(expected, rel=1e-6)
    assert got != pytest.approx(_bce_np(LOGITS, TARGETS), rel=1e-3)
    loss = create_loss("wbce", pos_weight=torch.tensor(w))
    assert "pos_weight" in dict(loss.named_buffers())  # moves with .to(device)


def test_focal_hand_value_lin_et_al_eq5():
    alpha, gamma = 0.25, 2.0
    p = _sig(LOGITS)
    p_t = np.where(TARGETS == 1, p, 1 - p)
    a_t = np.where(TARGETS == 1, alpha, 1 - alpha)
    expected = np.mean(-a_t * (1 - p_t) ** gamma * np.log(p_t))
    assert _run(create_loss("focal")) == pytest.approx(expected, rel=1e-10)
    # alpha disabled: alpha_t = 1.
    expected_noalpha = np.mean(-(1 - p_t) ** 3.0 * np.log(p_t))
    assert _run(create_loss("focal", alpha=None, gamma=3.0)) == pytest.approx(expected_noalpha, rel=1e-10)
    assert _run(create_loss("focal", alpha=-1, gamma=3.0)) == pytest.approx(expected_noalpha, rel=1e-10)
    # gamma=0 and no alpha is BCE.
    assert _run(create_loss("focal", alpha=None, gamma=0.0)) == pytest.approx(_bce_np(LOGITS, TARGETS), rel=1e-10)


def test_asl_hand_value_ridnik_et_al():
    gp, gn, m = 1.0, 4.0, 0.05
    p = _sig(LOGITS)
    p_m = np.maximum(p - m, 0.0)
    l_pos = (1 - p) ** gp * np.log(p)
    l_neg = p_m ** gn * np.log(1 - p_m)
    elem = -np.where(TARGETS == 1, l_pos, l_neg)
    assert elem[1, 0] == 0.0  # the easy negative (p < m) is discarded
    expected = elem.mean()
    loss = create_loss("asl", gamma_pos=gp, gamma_neg=gn, clip=m)
    assert _run(loss) == pytest.approx(expected, rel=1e-10)
    # Defaults are gamma_pos=0, gamma_neg=4, clip=0.05.
    l_pos0 = np.log(p)
    expected0 = np.mean(-np.where(TARGETS == 1, l_pos0, l_neg))
    assert _run(create_loss("asl")) == pytest.approx(expected0, rel=1e-10)
    # No shifting and no focusing is BCE.
    assert _run(create_loss("asl", gamma_pos=0, gamma_neg=0, clip=0)) == pytest.approx(
        _bce_np(LOGITS, TARGETS), rel=1e-10)


def test_asl_eps_clamp_bounds_a_hopeless_positive():
    loss = create_loss("asl", gamma_pos=0, gamma_neg=0, clip=0, eps=1e-4)
    got = _run(loss, np.array([[-100.0]]), np.array([[1.0]]))
    assert got == pytest.approx(-np.log(1e-4), rel=1e-9)


def test_label_smoothing_targets_and_value():
    eps = 0.2
    loss = create_loss("bce", label_smoothing=eps)
    smoothed = loss.smooth(torch.tensor(TARGETS)).numpy()
    np.testing.assert_allclose(smoothed, np.where(TARGETS == 1, 1 - eps / 2, eps / 2))
    assert _run(loss) == pytest.approx(_bce_np(LOGITS, smoothed), rel=1e-10)
    # Smoothing reaches every loss, not just BCE.
    for name in list_losses():
        assert _run(_make(name, label_smoothing=eps)) != pytest.approx(_run(_make(name)), rel=1e-6), name


def test_pos_weight_from_labels_known_matrix():
    Y = np.array([[1, 0, 0, 1],
                  [1, 0, 0, 1],
                  [0, 0, 0, 1],
                  [1, 1, 0, 1]], dtype=np.uint8)
    w = pos_weight_from_labels(Y)
    assert w.dtype == torch.float32
    # class 0: 1 neg / 3 pos; class 1: 3/1; class 2: no positives -> 1; class 3: no negatives -> 1
    np.testing.assert_allclose(w.numpy(), [1 / 3, 3.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(pos_weight_from_labels(torch.tensor(Y), max_weight=2.0).numpy(),
                               [1 / 3, 2.0, 1.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        pos_weight_from_labels(np.ones(4))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_stable_at_extreme_logits_and_finite_gradients(name):
    x = torch.tensor([[100.0, -100.0, 100.0, -100.0, 0.0, 30.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    loss = _make(name) if name != "wbce" else create_loss(name, pos_weight=torch.ones(6))
    out = loss(x, y)
    out.backward()
    assert torch.isfinite(out) and out.dim() == 0
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_lower_for_better_logits(name):
    y = torch.tensor(TARGETS, dtype=torch.float32)
    good = (2 * y - 1) * 3.0  # confident and right
    bad = -good  # confident and wrong
    loss = _make(name)
    assert float(loss(good, y)) < float(loss(bad, y))
    with pytest.raises(ValueError, match="same shape"):
        loss(good, y[:, :2])
