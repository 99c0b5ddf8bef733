"""Every registered head with three named modalities (image, plot, meta): shapes, masks,
gradients, and that the third modality is really read. Heads that take one modality refuse
three unless told which one; a head that cannot take N > 2 must refuse in one line."""
from __future__ import annotations

import inspect

import pytest
import torch

from train_heads.fusion import FUSIONS, create_fusion, list_fusions

torch.set_num_threads(1)

DIMS = {"image": 12, "plot": 10, "meta": 30}
C = 4
HEADS = list_fusions()


def _kw(name: str) -> dict:
    params = inspect.signature(FUSIONS[name].__init__).parameters
    kw = {"modality": "meta"} if FUSIONS[name].min_modalities == 1 else {}
    sizes = {"hidden": 16, "d_model": 16, "clf_hidden": 16, "num_layers": 1}
    kw.update({k: v for k, v in sizes.items() if k in params})
    if "at_weight" in params:  # idkg: its auxiliary losses need a kg cache (tests/test_idkg.py)
        kw.update(at_weight=0.0, contrast_weight=0.0)
    return kw


def _feats(b: int, seed: int, present: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f: dict[str, torch.Tensor] = {}
    for m, d in DIMS.items():
        p = present[m] if present else torch.ones(b, dtype=torch.bool)
        f[m] = torch.randn(b, d, generator=g) * p[:, None]
        f[f"{m}.present"] = p
    return f


def _head(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    try:
        return create_fusion(name, DIMS, C, **_kw(name))
    except ValueError as e:  # allowed only as a one-line refusal of N > 2 modalities
        assert "modalit" in str(e) and "\n" not in str(e), str(e)
        pytest.skip(f"{name} refuses three modalities: {e}")


@pytest.mark.parametrize("name", HEADS)
def test_three_modalities_shapes_and_gradients(name: str) -> None:
    head = _head(name).train()
    head(_feats(8, 0)).sum().backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"


@pytest.mark.parametrize("name", HEADS)
def test_the_third_modality_is_read_and_masks_hold(name: str) -> None:
    head = _head(name).eval()
    f = _feats(6, 1)
    base = head(f)
    changed = dict(f, meta=torch.randn(6, DIMS["meta"], generator=torch.Generator().manual_seed(9)))  # not a shift: LayerNorm removes those
    assert not torch.allclose(head(changed), base), f"{name} ignores the meta modality"
    # missing rows: every pattern with at least one modality present gives finite logits
    pres = {"image": torch.tensor([1, 0, 0, 1, 1, 0], dtype=torch.bool),
            "plot": torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.bool),
            "meta": torch.tensor([0, 0, 1, 0, 1, 1], dtype=torch.bool)}
    out = head(_feats(6, 2, pres))
    assert out.shape == (6, C) and torch.isfinite(out).all()


def test_unimodal_heads_pick_one_of_three() -> None:
    for name in [n for n in HEADS if FUSIONS[n].min_modalities == 1]:
        with pytest.raises(ValueError, match="uses one modality"):
            create_fusion(name, DIMS, C)
        assert create_fusion(name, DIMS, C, modality="plot").modality == "plot"


def test_gmu_has_one_gate_per_modality_for_three() -> None:
    head = create_fusion("gmu", DIMS, C).eval()
    head(_feats(5, 3))
    gates = head.explain()
    assert gates["gates"].shape == (5, 3, head.hidden) and gates["gate_mean"].shape == (5, 3)
