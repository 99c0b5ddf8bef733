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
    # the AT term alone equals eq. 7 on the head's own KG attention; row 0 has no KG input: label 0
    head2 = create_fusion("idkg", DIMS, 3, d_model=8, contrast_weight=0.0)
    lg = head2(f)
    a_kg = head2.explain()["attention"][:, head2.modalities.index("kg")]
    pseudo = torch.cat([torch.zeros(1), f["kg.at_label"][1:]])
    want = torch.nn.functional.binary_cross_entropy_with_logits(lg, y) + attention_teacher_loss(a_kg, pseudo)
    assert head2.training_loss(lg, y, torch.nn.BCEWithLogitsLoss()).item() == pytest.approx(want.item(), rel=1e-5)


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _hand_head(**kw) -> torch.nn.Module:
    """idkg on image (2) + kg (2), D_p 2, in eval mode with identity batchnorms and projections,
    attention Linear W = [[1, 0], [0, -1]], b = [0, 0.5], identity classifier: logits = F^fu."""
    head = create_fusion("idkg", {"image": 2, "kg": 2}, 2, d_model=2, contrast_weight=0.0, **kw).eval()
    with torch.no_grad():
        for m in ("image", "kg"):
            head.proj[m][0].eps = 0.0  # running mean 0, var 1: the batchnorm is the identity
            head.proj[m][1].weight.copy_(torch.eye(2))
            head.proj[m][1].bias.zero_()
        head.att.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        head.att.bias.copy_(torch.tensor([0.0, 0.5]))
        head.clf.weight.copy_(torch.eye(2))
        head.clf.bias.zero_()
    return head


HAND_FEATS = {"image": torch.tensor([[1.0, 2.0], [-1.0, 0.0]]), "image.present": torch.tensor([True, True]),
              "kg": torch.tensor([[0.5, -1.0], [7.0, 7.0]]), "kg.present": torch.tensor([True, False]),
              "kg.at_label": torch.tensor([0.3, 0.9])}


def test_eq5_fusion_eq7_teacher_and_eq15_sum_by_hand() -> None:
    """Eq. 5 on two rows (the second without its KG input: fed as zeros), the vector attention
    averaged for eq. 7 (a missing KG row's pseudo label is 0), and eq. 15 in the paper's sums."""
    s = _sig
    head = _hand_head(reduction="sum")
    logits = head(HAND_FEATS)
    # row 0: image h = (1, 2), attention pre-activations (1, -2 + 0.5); kg h = (0.5, -1) -> (0.5, 1.5)
    # row 1: image h = (-1, 0) -> (-1, 0.5); kg absent: h = (0, 0) -> (0, 0.5), adds nothing
    fused = [[1 * s(1) + 0.5 * s(0.5), 2 * s(-1.5) - 1 * s(1.5)], [-1 * s(-1), 0.0]]
    assert torch.allclose(logits, torch.tensor(fused), atol=1e-6)
    att = [[(s(1) + s(-1.5)) / 2, (s(0.5) + s(1.5)) / 2], [(s(-1) + s(0.5)) / 2, (s(0) + s(0.5)) / 2]]
    assert torch.allclose(head.explain()["attention"], torch.tensor(att), atol=1e-6)
    # eq. 7 summed: labels 0.3 and (kg absent) 0, not 0.9
    l_att = -math.log(1 - abs(att[0][1] - 0.3)) - math.log(1 - abs(att[1][1] - 0.0))
    y = [[1.0, 0.0], [1.0, 1.0]]
    l_cls = -sum(math.log(s(z)) if t else math.log(1 - s(z)) for zr, yr in zip(fused, y) for z, t in zip(zr, yr))
    got = head.training_loss(logits, torch.tensor(y), torch.nn.BCEWithLogitsLoss())
    assert got.item() == pytest.approx(l_cls + l_att, abs=1e-5)
    # mean (default): every term a mean over the 2 rows, BCE as the loss reduces it (over 2 x 2)
    mean_head = _hand_head()
    got = mean_head.training_loss(mean_head(HAND_FEATS), torch.tensor(y), torch.nn.BCEWithLogitsLoss())
    assert got.item() == pytest.approx(l_cls / 4 + l_att / 2, abs=1e-5)
    # missing=mask: the absent KG row gets attention 0 (and scalar attention gives one weight per modality)
    masked = _hand_head(missing="mask")
    masked(HAND_FEATS)
    assert masked.explain()["attention"][1, 1].item() == 0.0
    assert create_fusion("idkg", DIMS, 3, d_model=8, attention="scalar").att.out_features == 1


@pytest.mark.parametrize("dims", [{"image": 6, "kg": 4}, DIMS])
def test_joint_loss_gradients_reach_every_parameter(dims: dict[str, int]) -> None:
    """N = 2 and N = 3 with both auxiliary losses on: eq. 15's gradient reaches every parameter
    (the anchors E^g and their eq. 12 Linear included); a missing KG row stays finite."""
    torch.manual_seed(0)
    head = create_fusion("idkg", dims, 3, d_model=8).train()
    head.use_label_extras({"kg": {"genre_embeddings": np.ones((3, 4), dtype=np.float32)}})
    f = {k: v for k, v in _feats().items() if k.split(".")[0] in dims}
    y = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]] * 2)
    head.training_loss(head(f), y, torch.nn.BCEWithLogitsLoss()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert head.explain()["attention"].shape == (8, len(dims))


def test_anchor_options_random_and_frozen(capsys: pytest.CaptureFixture) -> None:
    """anchors=random (Table 5, "Ours (random)") ignores the KG's genre embeddings and says so;
    train_anchors=false keeps E^g fixed while its eq. 12 Linear still learns."""
    emb = {"kg": {"genre_embeddings": np.full((3, 4), 5.0, dtype=np.float32)}}
    torch.manual_seed(0)
    head = create_fusion("idkg", DIMS, 3, d_model=8, anchors="random")
    before = head.genre_emb.detach().clone()
    head.use_label_extras(emb)
    assert "anchors=random" in capsys.readouterr().out and torch.equal(head.genre_emb, before)
    head.training_loss(head(_feats()), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss())  # no kg anchors needed
    frozen = create_fusion("idkg", DIMS, 3, d_model=8, train_anchors=False)
    frozen.use_label_extras(emb)
    assert torch.equal(frozen.genre_emb, torch.full((3, 4), 5.0))
    frozen.training_loss(frozen(_feats()), torch.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]],
                         torch.nn.BCEWithLogitsLoss()).backward()
    assert frozen.genre_emb.grad is None and frozen.anchor_proj.weight.grad.abs().sum() > 0


def test_idkg_learns_a_toy_problem_with_both_auxiliary_losses() -> None:
    """Genres readable from the image features; the joint loss (eq. 15) falls by more than half."""
    g = torch.Generator().manual_seed(0)
    n = 96
    f = {m: torch.randn(n, d, generator=g) for m, d in DIMS.items()}
    y = (f["image"][:, :3] > 0).float()
    f |= {f"{m}.present": torch.ones(n, dtype=torch.bool) for m in DIMS}
    f["kg.at_label"] = torch.rand(n, generator=g) * 0.8
    torch.manual_seed(0)
    head = create_fusion("idkg", DIMS, 3, d_model=16)
    head.use_label_extras({"kg": {"genre_embeddings": torch.randn(3, 4, generator=g).numpy()}})
    opt = torch.optim.AdamW(head.parameters(), lr=2e-2)
    losses = []
    for _ in range(30):
        loss = head.training_loss(head(f), y, torch.nn.BCEWithLogitsLoss())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert ((head.eval()(f) > 0).float() == y).float().mean() > 0.8  # the classifier learned (chance: 0.5)


def test_idkg_errors_are_one_line() -> None:
    msgs = []
    for kw, dims, match in [({}, {"image": 3, "text": 3}, "kg=NAME"), ({"attention": "softmax"}, DIMS, "attention"),
                            ({"anchors": "kgx"}, DIMS, "anchors"), ({"reduction": "none"}, DIMS, "reduction"),
                            ({"tau": 0.0}, DIMS, "tau")]:
        with pytest.raises(ValueError, match=match) as e:
            create_fusion("idkg", dims, 3, **kw)
        msgs.append(str(e.value))
    head = create_fusion("idkg", DIMS, 3, d_model=8)
    f = _feats()
    del f["kg.at_label"]
    with pytest.raises(ValueError, match="at_label.*re-extract") as e:
        head.training_loss(head(f), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss())
    msgs.append(str(e.value))
    head = create_fusion("idkg", DIMS, 3, d_model=8, at_weight=0.0)
    with pytest.raises(ValueError, match="anchors=random") as e:
        head.training_loss(head(_feats()), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss())
    msgs.append(str(e.value))
    head = create_fusion("idkg", DIMS, 3, d_model=8, at_weight=0.0, contrast_weight=0.0, reduction="sum")
    with pytest.raises(ValueError, match="reduction=sum") as e:
        head.training_loss(head(_feats()), torch.ones(8, 3), torch.nn.BCEWithLogitsLoss(reduction="sum"))
    msgs.append(str(e.value))
    with pytest.raises(ValueError, match="do not fit"):
        create_fusion("idkg", DIMS, 3).use_label_extras({"kg": {"genre_embeddings": np.zeros((2, 4))}})
    assert all("\n" not in m for m in msgs), msgs


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
    # Table 5's "Ours (random)": the kg cache's genre embeddings are left unused, and it says so
    out = run_ok([*args[:-1], tmp_path / "r3", "-o", "anchors=random", "-o", "train_anchors=false"])
    assert "anchors=random" in out
