"""After training: export the fine-tuned backbones, cache their features, write the run folder.

Back into stage 1 (DESIGN.md): each backbone that trained is saved as the state dict of its
encoder's model (`enc.model.state_dict()`, the exact module `extract --state-dict` loads) under
<cache dir>/finetuned/<run>/<name>.<encoder>.pt (and copied to `--export DIR`). Its features
over the whole data set, computed by the fine-tuned model in eval mode, are written as the
cache `extract --encoder E --state-dict that.pt` would write (same settings, same hashed name),
so the run folder is a normal head run on normal caches: `runs ls`, `compare`, `report`,
`predict` (which rebuilds the encoder with that state dict) and `train-head` on the
fine-tuned features all work unchanged. Frozen backbones point at their plain caches.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.features import load_features
from cache.read import open_info
from cache.store import cache_filename, settings_hash, write_cache_file
from extract.encoders import create_encoder
from extract.images import OK
from extract.records import Dataset
from extract.run import ExtractConfig, cache_attrs, cache_settings
from finetune.config import FinetuneConfig
from finetune.freeze import describe
from finetune.train import Loop, Trained
from train_heads.runs import write_run
from train_heads.train import TrainResult, predict_probs, run_thresholds


@torch.no_grad()
def all_features(loop: Loop) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every row's features (N, D) float32 (NaN where absent), present (N,) and status (N,) per
    backbone, from the best model in eval mode."""
    model, n = loop.model, len(loop.ds.records)
    model.eval()
    feats = {m: np.full((n, p.enc.dim), np.nan, np.float32) for m, p in model.plans.items()}
    present = {m: np.zeros(n, bool) for m in model.plans}
    status = {m: np.full(n, OK, np.int8) for m in model.plans}
    loop.rows["all"] = torch.arange(n)
    for idx, st, raw in loop._batches("all", False, 0):
        out = model.features(idx.to(loop.device), raw, normalize=False)  # caches hold raw features
        for m in model.plans:
            ok = out[f"{m}.present"].cpu().numpy()
            feats[m][idx.numpy()[ok]] = out[m][out[f"{m}.present"]].float().cpu().numpy()
            present[m][idx.numpy()] = ok
            if m in st:
                status[m][idx.numpy()] = st[m]
    return feats, present, status


def _save_state_dict(module: torch.nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
    os.replace(tmp, path)


def _feature_cache(cfg: FinetuneConfig, ds: Dataset, name: str, loop: Loop, state_dict: Path,
                   feats: np.ndarray, present: np.ndarray, status: np.ndarray, seconds: float) -> str:
    """Write the cache of the fine-tuned backbone's features, named and described as
    `extract --state-dict state_dict` names and describes it."""
    spec, plan = cfg.backbones[name], loop.model.plans[name]
    ecfg = ExtractConfig(dataset=cfg.dataset, encoder=spec.encoder, weights=spec.weights, options=spec.options,
                         state_dict=state_dict.resolve(), text_field=spec.text_field, out=Path(cfg.cache_dir),
                         device=cfg.head.device, dtype="float32", command=f"finetune -> {loop.ckpt_path.stem}")
    enc = create_encoder(spec.encoder, weights=spec.weights, options=spec.options, state_dict=state_dict)
    precision = "fp32" if loop.device.type == "cpu" else f"finetune-amp-{cfg.amp}"
    settings = cache_settings(ecfg, enc, ds, precision)
    key = settings_hash(settings)
    final = Path(cfg.cache_dir) / cache_filename(ds.name, enc.modality, enc.name, key)
    if plan.mode == "prefix":  # no raw pass: the reasons for absent rows are those of the prefix cache
        missing = {k: v for k, v in open_info(loop.built.caches[name]).attrs.get("missing", {}).items()
                   if k != "ids_first_1000"}
        status = np.where(present, OK, -1).astype(np.int8)
    else:
        from extract.run import REASONS

        missing = {REASONS[c]: int((status == c).sum()) for c in REASONS if (status == c).any()}
    attrs = cache_attrs(ecfg, enc, ds, settings, key, missing, status, seconds, resumed=False)
    header = {"ids": np.array([r.id for r in ds.records], dtype=object),
              "split": np.array([r.split for r in ds.records], dtype=object),
              "labels": np.array(ds.label_matrix(), dtype=np.uint8).reshape(len(ds.records), -1)}
    write_cache_file(final, header, {"features": feats, "present": present}, attrs, "float32",
                     plan.enc.extra_state())
    return str(final)


def finish(cfg: FinetuneConfig, loop: Loop, trained: Trained, run_name: str, key: str) -> tuple[Path, dict[str, Any]]:
    t0 = time.perf_counter()
    ds, model = loop.ds, trained.model
    feats, present, status = all_features(loop)
    caches: dict[str, str] = {}
    exported: dict[str, str] = {}
    for m, plan in sorted(model.plans.items()):
        if not plan.trains:
            caches[m] = loop.built.caches.get(m) or _frozen_cache(cfg, loop, m)
            continue
        path = Path(cfg.cache_dir) / "finetuned" / run_name / f"{m}.{plan.enc.name}.pt"
        _save_state_dict(plan.enc.model, path)
        exported[m] = str(path.resolve())
        if cfg.export:
            Path(cfg.export).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(cfg.export) / path.name)
            exported[m] += f" (copied to {Path(cfg.export) / path.name})"
        caches[m] = _feature_cache(cfg, ds, m, loop, path, feats[m], present[m], status[m], time.perf_counter() - t0)
    fs = load_features(caches).to(loop.device)  # what predict and train-head read: a head on these caches
    norm = {m: (a.cpu(), b.cpu()) for m, (a, b) in model.norm.items()}
    fs.apply_standardize(norm)  # the fixed train statistics the head was trained with; saved, applied by predict
    head_cfg = replace(cfg.head, features=caches, name=run_name, standardize=bool(norm))
    rows = {s: fs.rows(s) for s in ("train", "dev", "test")}
    probs = {s: predict_probs(model.head, fs, r) for s, r in rows.items()}
    y_dev = fs.Y[rows["dev"]].cpu().numpy().astype(np.uint8)
    thr = run_thresholds(head_cfg, probs["dev"], y_dev)
    res = TrainResult(model.head, fs, trained.history, trained.best_epoch, thr, probs, norm,
                      {s: r.cpu().numpy() for s, r in rows.items()}, trained.seconds)
    extra = {"config": {"finetune": {"key": key, "settings": cfg.settings(), "dataset": asdict(cfg.dataset),
                                     "cache_dir": cfg.cache_dir, "exported": exported,
                                     "backbones": {m: describe(p) for m, p in model.plans.items()},
                                     "input_caches": loop.built.caches}},
             "timing": {"epoch_seconds": [round(x, 3) for x in trained.epoch_seconds],
                        "finish_seconds": round(time.perf_counter() - t0, 3)}}
    return write_run(head_cfg, res, extra=extra)


def _frozen_cache(cfg: FinetuneConfig, loop: Loop, m: str) -> str:
    """A frozen backbone read raw (its input was augmented): its plain eval-time features cache."""
    from finetune.setup import _extract

    return _extract(cfg, loop.ds, cfg.backbones[m], None, progress=loop.progress)
