"""Issue-12 presets: `idkg` (paper 002's ablation, Table 5 anchors and Fig. 4 tau at its stage-two
settings) and `poster-ocr-004` (paper 004's poster image + poster text setup)."""
from __future__ import annotations

from pathlib import Path

import pytest

from train_heads.sweep.grid import expand
from train_heads.sweep.parse import assemble
from train_heads.sweep.synth import make_cache_pair


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    dims = {"image": 16, "text": 24, "kg": 8}  # "kg": a synthetic stand-in (expansion only, nothing trains)
    return {m: str(p) for m, p in make_cache_pair(tmp_path_factory.mktemp("c"), n=60, dims=dims, seed=1).items()}


def _runs(preset: str, features: list[str], tmp_path: Path) -> dict:
    cfg = assemble(preset=preset, features=features, seeds="0")
    runs, skipped = expand(cfg, tmp_path)
    assert not skipped
    return {r.labels["head"]: r.cfg for r in runs}


def test_preset_idkg_is_paper_002s_ablation(caches: dict[str, str], tmp_path: Path) -> None:
    """Table 3 rows (full, - AT, - G-CACL, - both, GMU + KG), Table 5's random anchors, Fig. 4's
    tau 0.05..0.9 (0.1 the full model's); AdamW 1e-3, batch 64, 15 epochs, no early stop, no
    scheduler or clipping; BCE summed over genres (eq. 14 / B) beside the heads' row means."""
    runs = _runs("idkg", [f"{m}={p}" for m, p in caches.items()], tmp_path)
    assert set(runs) == {"idkg", "idkg-minus-at", "idkg-minus-gcacl", "idkg-minus-at-gcacl", "idkg-random-anchors",
                         "gmu-kg", *(f"idkg-tau{t}" for t in (0.05, 0.3, 0.5, 0.7, 0.9))}
    assert runs["idkg"].fusion_kw == {} and runs["gmu-kg"].fusion == "gmu"
    assert runs["idkg-minus-at"].fusion_kw == {"at_weight": 0.0}
    assert runs["idkg-minus-gcacl"].fusion_kw == {"contrast_weight": 0.0}
    assert runs["idkg-random-anchors"].fusion_kw == {"anchors": "random"}
    from train_heads.fusion import head_options

    assert head_options("idkg")["tau"].default == 0.1 and head_options("idkg")["d_model"].default == 512
    for c in runs.values():
        assert (c.optimizer, c.lr, c.batch_size, c.max_epochs, c.patience) == ("adamw", 1e-3, 64, 15, 15)
        assert (c.scheduler, c.grad_clip, c.weight_decay) == ("none", 0.0, 0.01)
        assert c.loss == "bce" and c.loss_kw == {"reduction": "sum_classes"}


def test_preset_poster_ocr_004_is_paper_004s_setup(caches: dict[str, str], tmp_path: Path) -> None:
    """Poster image + poster text: MCAM + SMSAM L = 4 and minus both (paper form), GMU and
    CentralNet (Table I), each modality alone (Table II), all at ablation-004's settings."""
    runs = _runs("poster-ocr-004", [f"image={caches['image']}", f"poster_text={caches['text']}"], tmp_path)
    assert set(runs) == {"L4", "minus-both", "gmu", "centralnet", "unimodal.image", "unimodal.poster_text"}
    assert runs["L4"].fusion_kw == {"paper": True, "num_layers": 4}
    assert runs["minus-both"].fusion_kw == {"paper": True, "use_mcam": False, "use_smsam": False}
    assert runs["unimodal.poster_text"].fusion_kw == {"modality": "poster_text"}
    for c in runs.values():
        assert (c.optimizer, c.lr, c.batch_size, c.max_epochs, c.patience) == ("adam", 1e-4, 32, 100, 10)
        assert c.loss == "asl" and c.loss_kw == {"gamma_pos": 3.0, "gamma_neg": 4.0, "margin": 0.2}
        assert (c.threshold, c.fixed_threshold, c.scheduler) == ("fixed", 0.5, "none")
