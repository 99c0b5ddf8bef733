"""One fine-tuning run from a FinetuneConfig: build, train (or resume), export, write the run.

    path, metrics, status = run_finetune(cfg)   # status: "trained" | "up to date"

A finished run folder with the same settings key is "up to date" (nothing is trained); a
different run under the same name is refused unless `force`. The per-epoch checkpoint is
removed once the run folder is written.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from cache.store import check_out_folder
from extract.datasets import load_dataset
from extract.device import pick_device
from extract.records import Dataset
from finetune.config import FinetuneConfig
from finetune.finish import finish
from finetune.freeze import describe
from finetune.model import JointModel
from finetune.setup import build_backbones
from finetune.train import Loop
from train_heads.fusion import create_fusion
from train_heads.runs import NOT_FINISHED, finished_config


def existing(cfg: FinetuneConfig, ds: Dataset) -> tuple[Path, str, str | None]:
    """(run folder, settings key, None | "same" | why it differs)."""
    fp = ds.fingerprint()
    key, path = cfg.key(fp), cfg.run_dir(fp)
    if not path.exists():
        return path, key, None
    old = finished_config(path)
    if old is None:
        return path, key, NOT_FINISHED
    return path, key, "same" if old.get("finetune", {}).get("key") == key else \
        "it was trained with different settings"


def run_finetune(cfg: FinetuneConfig, dataset: Dataset | None = None, force: bool = False,
                 progress: bool = True, say: Any = print) -> tuple[Path, dict[str, Any], str]:
    check_out_folder(cfg.head.out)
    check_out_folder(cfg.cache_dir)
    ds = dataset if dataset is not None else load_dataset(cfg.dataset)
    path, key, why = existing(cfg, ds)
    if why == "same" and not force:
        return path, json.loads((path / "metrics.json").read_text()), "up to date"
    if why is not None and why != "same" and not force:
        raise ValueError(f"run folder {path} exists and {why}; pass --force to replace it or --name another")
    loop = prepare(cfg, ds, path.name, progress, say)
    trained = loop.run(key)
    out, metrics = finish(cfg, loop, trained, path.name, key)
    loop.ckpt_path.unlink(missing_ok=True)
    return out, metrics, "trained"


def prepare(cfg: FinetuneConfig, ds: Dataset, run_name: str, progress: bool = True, say: Any = print) -> Loop:
    """Backbones, head and joint model built, inputs cached, z-scoring statistics computed:
    the training loop, ready to run."""
    device = pick_device(cfg.head.device)
    built = build_backbones(cfg, ds, device, progress)
    for note in built.notes:
        say(note)
    torch.manual_seed(cfg.head.seed)
    dims = {p.name: p.enc.dim for p in built.plans}
    head = create_fusion(cfg.head.fusion, dims, len(ds.label_names), **cfg.head.fusion_kw)
    stored = {m: _to(s, device) for m, s in built.stored.items()}
    model = JointModel(built.plans, head, stored, cfg.grad_checkpointing,
                       channels_last=cfg.channels_last and device.type == "cuda").to(device)
    for p in built.plans:
        say(describe(p))
    loop = Loop(cfg, ds, built, model, run_name, device, progress)
    if cfg.head.standardize is not False:  # deterministic: a resumed run recomputes the same
        model.norm = loop.train_stats()
    return loop


def _to(s: Any, device: torch.device) -> Any:
    return replace(s, **{k: getattr(s, k).to(device) for k in ("present", "features", "tokens", "token_mask")
                         if getattr(s, k) is not None})
