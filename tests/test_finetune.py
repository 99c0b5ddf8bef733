"""finetune: freezing, discriminative lrs, the cached prefix, resume, export round trip.

Tiny backbones only (tests/toy_trunk.py's 16x16 conv net, a 2-layer random MiniLM), on the
120-movie generated data set, so each run takes about a second."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tests.toy_trunk  # noqa: F401  (registers toy-convnet)
from extract.datasets import DatasetConfig, load_dataset
from extract.encoders import create_encoder
from finetune.config import BackboneSpec, FinetuneConfig
from finetune.freeze import make_plan, param_groups
from finetune.run import run_finetune
from tests.tiny_encoders import TINY_BERT
from train_heads.config import HeadConfig
from train_heads.runs import load_predictions

TEXT = {"weights": "random", "options": {"config": TINY_BERT, "max_length": 16}}


def config(tmp_path: Path, data: Path, image: str | None = "last:1", text: str | None = "last:1",
           **kw) -> FinetuneConfig:
    backbones = {}
    if image:
        backbones["image"] = BackboneSpec("toy-convnet", weights="random", unfreeze=image)
    if text:
        backbones["text"] = BackboneSpec("minilm", **TEXT, unfreeze=text)
    head_kw = {"fusion": "concat" if len(backbones) > 1 else "linear", "max_epochs": 3, "patience": 3,
               "batch_size": 32, "lr": 3e-3, "seed": 0, "out": str(tmp_path / "runs"),
               **kw.pop("head", {})}
    if head_kw["fusion"] == "linear":
        head_kw["fusion_kw"] = {"solver": "adamw"}
    return FinetuneConfig(dataset=DatasetConfig(path=data, format="mmimdb"), backbones=backbones,
                          head=HeadConfig(features={}, **head_kw), backbone_lr=1e-3, workers=0,
                          cache_dir=str(tmp_path / "caches"), **kw)


@pytest.fixture(scope="module")
def ds(tiny_data: Path):
    return load_dataset(DatasetConfig(path=tiny_data, format="mmimdb"))


def _metrics(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def test_frozen_parameters_stay_bit_identical_and_the_rest_trains(tmp_path, tiny_data, ds):
    cfg = config(tmp_path, tiny_data, image="last:1", text="last:1", cached_prefix="off")
    path, _, status = run_finetune(cfg, dataset=ds, progress=False)
    assert status == "trained"
    ref = create_encoder("toy-convnet", weights="random")
    ref.build(torch.device("cpu"))
    tuned = torch.load(next((Path(cfg.cache_dir) / "finetuned").rglob("image.toy-convnet.pt")), weights_only=True)
    before = ref.model.state_dict()
    for k, v in before.items():
        if k.startswith("3."):  # the last block: trained (BatchNorm statistics included)
            if v.is_floating_point():
                assert not torch.equal(tuned[k], v), k
        else:  # stem and blocks 0-1: untouched, bit for bit (BatchNorm running stats too)
            assert torch.equal(tuned[k], v), k


def test_discriminative_learning_rates_reach_the_optimiser_groups(ds):
    enc = create_encoder("minilm", **TEXT)
    enc.build(torch.device("cpu"))
    plan = make_plan("text", enc, enc.trunk(), "all")
    head = torch.nn.Linear(4, 2)
    groups = {g["name"]: g["lr"] for g in param_groups(head, [plan], 1e-3, 1e-4, 0.5)}
    assert groups["head"] == 1e-3
    assert groups["text.block1"] == pytest.approx(1e-4)  # the top block (and the tail)
    assert groups["text.block0"] == pytest.approx(0.5e-4)
    assert groups["text.stem"] == pytest.approx(0.25e-4)  # below block 0
    opt = torch.optim.AdamW(param_groups(head, [plan], 1e-3, 1e-4, 0.5))
    assert sorted(g["lr"] for g in opt.param_groups) == sorted(groups.values())
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in head.parameters()) + sum(p.numel() for p in plan.trunk.parameters())


def test_cached_prefix_gives_the_full_forward_results(tmp_path, tiny_data, ds):
    a, _, _ = run_finetune(config(tmp_path / "a", tiny_data, cached_prefix="auto"), dataset=ds, progress=False)
    b, _, _ = run_finetune(config(tmp_path / "b", tiny_data, cached_prefix="off"), dataset=ds, progress=False)
    ca, cb = (json.loads((p / "config.json").read_text())["finetune"] for p in (a, b))
    assert "input: prefix" in ca["backbones"]["image"] and "input: prefix" in ca["backbones"]["text"]
    assert "input: raw" in cb["backbones"]["image"]
    ha, hb = (json.loads((p / "history.json").read_text()) for p in (a, b))
    assert [h["train_loss"] for h in ha] == pytest.approx([h["train_loss"] for h in hb], rel=1e-4)
    pa, pb = (load_predictions(p)["probs"] for p in (a, b))
    np.testing.assert_allclose(pa, pb, atol=1e-4)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, tiny_data, ds, monkeypatch):
    import finetune.checkpoint as ckpt

    full, _, _ = run_finetune(config(tmp_path / "full", tiny_data), dataset=ds, progress=False)
    real_save, calls = ckpt.save, []

    def dying_save(path, state):
        real_save(path, state)
        calls.append(state["loop"]["epoch"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after epoch 1 was saved

    monkeypatch.setattr(ckpt, "save", dying_save)
    cfg = config(tmp_path / "cut", tiny_data)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg, dataset=ds, progress=False)
    monkeypatch.setattr(ckpt, "save", real_save)
    cut, _, _ = run_finetune(cfg, dataset=ds, progress=False)
    assert json.loads((cut / "history.json").read_text()) == json.loads((full / "history.json").read_text())
    assert _metrics(cut) == _metrics(full)
    assert not any((tmp_path / "cut" / "runs" / ".finetune").iterdir())  # the checkpoint is gone


def test_exported_backbone_reextracts_to_the_fine_tuned_features(tmp_path, tiny_data, ds):
    from cache.features import load_features
    from extract.run import ExtractConfig, run_extract

    cfg = config(tmp_path, tiny_data, export=str(tmp_path / "export"))
    path, _, _ = run_finetune(cfg, dataset=ds, progress=False)
    run_cfg = json.loads((path / "config.json").read_text())
    for m, enc, opts in (("image", "toy-convnet", {}), ("text", "minilm", TEXT["options"])):
        sd = tmp_path / "export" / f"{m}.{enc}.pt"
        assert sd.is_file()
        fresh = tmp_path / f"fresh-{m}"
        res = run_extract(ExtractConfig(dataset=cfg.dataset, encoder=enc, weights="random", options=opts,
                                        state_dict=sd, out=fresh, dtype="float32", workers=0), progress=False)
        ours = load_features({m: run_cfg["config"]["features"][m]})
        theirs = load_features({m: res.path})
        np.testing.assert_allclose(ours.X[m].numpy(), theirs.X[m].numpy(), atol=1e-4)
        assert Path(run_cfg["config"]["features"][m]).name == res.path.name  # same settings, same cache name


def test_same_settings_are_up_to_date_and_other_settings_get_their_own_folder(tmp_path, tiny_data, ds):
    cfg = config(tmp_path, tiny_data)
    p1, m1, s1 = run_finetune(cfg, dataset=ds, progress=False)
    p2, m2, s2 = run_finetune(cfg, dataset=ds, progress=False)
    assert (s1, s2) == ("trained", "up to date") and p1 == p2 and m1 == m2
    p3, _, _ = run_finetune(config(tmp_path, tiny_data, image="last:2"), dataset=ds, progress=False)
    assert p3 != p1


def test_gradual_unfreezing_trains_one_more_block_every_k_epochs(tmp_path, tiny_data, ds):
    from finetune.freeze import units_at

    enc = create_encoder("toy-convnet", weights="random")
    enc.build(torch.device("cpu"))
    plan = make_plan("image", enc, enc.trunk(), "all")
    assert [units_at(plan, e, 2) for e in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]  # 3 blocks + the stem
    assert units_at(plan, 0, 0) == 4


@pytest.mark.parametrize("spec, expect", [("last:9", "N must be 1..3"), ("first:1", "expected none, all or last:N"),
                                          ("all+stem", "already trains the stem")])
def test_bad_block_specs_are_one_line(spec, expect):
    enc = create_encoder("toy-convnet", weights="random")
    enc.build(torch.device("cpu"))
    with pytest.raises(ValueError, match=expect):
        make_plan("image", enc, enc.trunk(), spec)


def _tuned_image_state(cfg: FinetuneConfig) -> dict:
    return torch.load(next((Path(cfg.cache_dir) / "finetuned").rglob("image.toy-convnet.pt")), weights_only=True)


def test_gradual_unfreezing_leaves_lower_blocks_frozen_until_their_turn(tmp_path, tiny_data, ds):
    # last:2 with one more block every 10 epochs: in 3 epochs only the top block ever trains
    cfg = config(tmp_path, tiny_data, image="last:2", text=None, unfreeze_every=10)
    run_finetune(cfg, dataset=ds, progress=False)
    ref = create_encoder("toy-convnet", weights="random")
    ref.build(torch.device("cpu"))
    tuned, before = _tuned_image_state(cfg), ref.model.state_dict()
    assert all(torch.equal(tuned[k], v) for k, v in before.items() if k.startswith("2."))  # block 1: not yet
    assert not torch.equal(tuned["3.0.weight"], before["3.0.weight"])  # block 2 (the top): trained


def test_gradient_checkpointing_and_accumulation_keep_training_sound(tmp_path, tiny_data, ds):
    plain, _, _ = run_finetune(config(tmp_path / "a", tiny_data, cached_prefix="off"), dataset=ds, progress=False)
    ckpt, _, _ = run_finetune(config(tmp_path / "b", tiny_data, cached_prefix="off", grad_checkpointing=True),
                              dataset=ds, progress=False)
    ha, hb = (json.loads((p / "history.json").read_text()) for p in (plain, ckpt))
    assert [h["train_loss"] for h in ha] == pytest.approx([h["train_loss"] for h in hb], rel=1e-5)
    acc, _, _ = run_finetune(config(tmp_path / "c", tiny_data, grad_accum=2), dataset=ds, progress=False)
    hc = json.loads((acc / "history.json").read_text())
    assert len(hc) == 3 and all(np.isfinite(h["train_loss"]) for h in hc)
    assert [h["train_loss"] for h in hc] != pytest.approx([h["train_loss"] for h in ha], rel=1e-5)
