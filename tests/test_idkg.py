"""IDKG (paper 002): the losses against hand-computed values, the head's anchors, attention and
joint loss, and the whole chain on the demo data (kg cache -> at_label + genre anchors -> idkg)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from train_heads.fusion import create_fusion
from train_heads.idkg_losses import attention_teacher_loss, centroids, gcacl_loss
from tests.cli_helpers import run_ok, run_refused

torch.set_num_threads(1)


def test_attention_teacher_loss_eq7_by_hand() -> None:
    att, pseudo = torch.tensor([0.2, 0.9]), torch.tensor([0.5, 0.4])
    # -log(1 - 0.3) and -log(1 - 0.5)
    by_hand = [0.356675, 0.693147]
    assert attention_teacher_loss(att, pseudo, "sum").item() == pytest.approx(sum(by_hand), abs=1e-5)
    assert attention_teacher_loss(att, pseudo).item() == pytest.approx(sum(by_hand) / 2, abs=1e-5)


def test_gcacl_loss_eq13_by_hand() -> None:
    fused = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0]])  # the third row has no genre: skipped
    genre = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cent = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    # tau 0.5. row 0: positive 1/0.5 = 2; negatives genres 1, 2: scores 0 and 2 -> log(1 + 2e^2) - 2
    # row 1: positive 2; negative genre 0: score 0 -> log(1 + e^-2)
    l0, l1 = math.log(1 + 2 * math.e ** 2) - 2, math.log(1 + math.e ** -2)
    assert gcacl_loss(fused, y, genre, cent, 0.5, "sum").item() == pytest.approx(l0 + l1, abs=1e-5)
    assert gcacl_loss(fused, y, genre, cent, 0.5).item() == pytest.approx((l0 + l1) / 2, abs=1e-5)
    assert gcacl_loss(fused, torch.zeros(3, 3), genre, cent, 0.5).item() == 0.0


def test_centroids_eq9() -> None:
    e = torch.tensor([[1.0, 2], [3, 4], [5, 6]])
    out = centroids(torch.tensor([[1.0, 0, 1], [0, 0, 0]]), e)
    assert torch.allclose(out, torch.tensor([[3.0, 4.0], [0.0, 0.0]]))


DIMS = {"image": 6, "text": 5, "kg": 4}


def _feats(b: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = {m: torch.randn(b, d, generator=g) for m, d in DIMS.items()}
    f |= {f"{m}.present": torch.ones(b, dtype=torch.bool) for m in DIMS}
    f["kg.present"][0] = False
    f["kg.at_label"] = torch.rand(b, generator=g) * 0.8
    return f


def test_anchors_from_genre_embeddings_attention_and_joint_loss() -> None:
    torch.manual_seed(0)
    head = create_fusion("idkg", DIMS, 3, d_model=8)
    emb = np.array([[1, 2, 3, 4], [np.nan] * 4, [5, 6, 7, 8]], dtype=np.float32)
    before = head.genre_emb.detach().clone()
    head.use_label_extras({"kg": {"genre_embeddings": emb}})
    assert torch.equal(head.genre_emb[0], torch.tensor([1.0, 2, 3, 4]))
    assert torch.equal(head.genre_emb[1], before[1])  # no entity for genre 1: stays random
    head.train()
    y = torch.tensor([[1.0, 0, 0], [0, 1, 1]] * 4)
    f = _feats()
    logits = head(f)
    assert logits.shape == (8, 3) and head.explain()["attention"].shape == (8, 3)
    base = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    loss = head.training_loss(logits, y, torch.nn.BCEWithLogitsLoss())
    assert loss > base  # both auxiliary terms are positive here
    loss.backward()
    assert head.genre_emb.grad is not None and head.att.weight.grad.abs().sum() > 0
    # the AT term alone equals eq. 7 on the head's own KG attention
    head2 = create_fusion("idkg", DIMS, 3, d_model=8, contrast_weight=0.0)
    lg = head2(f)
    a_kg = head2.explain()["attention"][:, head2.modalities.index("kg")]
    want = torch.nn.functional.binary_cross_entropy_with_logits(lg, y) + attention_teacher_loss(a_kg, f["kg.at_label"])
    assert head2.training_loss(lg, y, torch.nn.BCEWithLogitsLoss()).item() == pytest.approx(want.item(), rel=1e-5)


def test_idkg_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match="kg=NAME"):
        create_fusion("idkg", {"image": 3, "text": 3}, 2)
    head = create_fusion("idkg", DIMS, 3, d_model=8)
    f = _feats()
    del f["kg.at_label"]
    with pytest.raises(ValueError, match="at_label"):
        head.training_loss(head(f), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss())
    head = create_fusion("idkg", DIMS, 3, d_model=8, at_weight=0.0)
    with pytest.raises(ValueError, match="anchors=random"):
        head.training_loss(head(_feats()), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss())
    with pytest.raises(ValueError, match="attention"):
        create_fusion("idkg", DIMS, 3, attention="softmax")


def test_idkg_end_to_end_on_demo_data(tiny_data: Path, tiny_caches: dict, tmp_path: Path) -> None:
    """kg cache (at_label, genre embeddings) -> train-head idkg -> evaluate --missing."""
    out = run_ok(["extract", "--data", tiny_data, "--format", "mmimdb", "--encoder", "kg", "-o", "epochs=2",
                  "-o", "dim=8", "-o", "batch_size=256", "--out", tmp_path / "c"])
    assert "kg graph (movie schema)" in out
    kg = next((tmp_path / "c").glob("*-meta-kg-*.h5"))
    args = ["train-head", "-f", f"image={tiny_caches['image']}", "-f", f"text={tiny_caches['text']}",
            "-f", f"kg={kg}", "--fusion", "idkg", "-o", "d_model=16", "--max-epochs", "3", "--quiet",
            "--out", tmp_path / "runs"]
    run_ok(args)
    run = next((tmp_path / "runs").iterdir())
    res = run_ok(["evaluate", run, "--missing", "kg:0,1", "--out", tmp_path / "miss"])
    assert "| kg | 1.00 |" in res
    run_refused(args[:5] + ["-f", f"meta={kg}", "--fusion", "idkg", "--out", tmp_path / "r2"], "kg=NAME")
