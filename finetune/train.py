"""The fine-tuning loop, in one readable file (the head loop's rules, one level down).

Same loss, optimiser, warmup + ReduceLROnPlateau/cosine, gradient clipping, early stopping on
dev macro-F1 with the run's thresholds, and best-epoch weights as `train-head`
(train_heads/train.py), plus: discriminative learning rates and gradual unfreezing
(finetune/freeze.py), gradient accumulation (`grad_accum` batches per optimiser step; the
warmup counts optimiser steps), gradient checkpointing, AMP (bf16 / fp16 with a GradScaler)
on CUDA, and a checkpoint after every epoch from which a rerun resumes (finetune/checkpoint.py).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from extract.records import Dataset
from finetune import checkpoint as ckpt
from finetune.augment import dropout_ids, token_dropout
from finetune.config import FinetuneConfig
from finetune.data import index_batches, iterate
from finetune.freeze import param_groups, set_trainable, trainable_names, units_at
from finetune.model import JointModel
from finetune.setup import Built
from train_heads.losses import create_loss, needs_pos_weight, pos_weight_from_labels
from train_heads.optimizers import OPTIMIZERS
from train_heads.thresholds import macro_f1_at
from train_heads.train import run_thresholds, schedules, step_epoch_schedule


@dataclass
class Trained:
    model: JointModel  # its `norm`: the fixed z-scoring (empty: --no-standardize)
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float  # training time (this process; a resumed run adds the earlier part)
    epoch_seconds: list[float]


def amp_context(cfg: FinetuneConfig, device: torch.device) -> tuple[Any, torch.amp.GradScaler | None]:
    """(autocast context, grad scaler or None): bf16 by default on CUDA, fp16 with a scaler."""
    if device.type != "cuda" or cfg.amp == "off":
        return contextlib.nullcontext(), None
    dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast("cuda", dtype=dtype), scaler


class Loop:
    def __init__(self, cfg: FinetuneConfig, ds: Dataset, built: Built, model: JointModel, run_name: str,
                 device: torch.device, progress: bool = True) -> None:
        self.cfg, self.h, self.ds, self.built, self.model = cfg, cfg.head, ds, built, model
        self.device, self.progress = device, progress
        split = np.array([r.split for r in ds.records])
        self.rows = {s: torch.from_numpy(np.flatnonzero(split == s)) for s in ("train", "dev", "test")}
        for s, r in self.rows.items():
            if len(r) == 0:
                raise ValueError(f"data set {ds.name!r} has no {s!r} rows; finetune needs a train/dev/test split")
        self.Y = torch.tensor(ds.label_matrix(), dtype=torch.float32).reshape(len(ds.records), -1)
        self.encoders_raw = {p.name: p.enc for p in built.plans if p.mode == "raw"}
        self.ckpt_path = ckpt.checkpoint_path(self.h.out, run_name)

    # ---- one pass ---------------------------------------------------------------------
    def _batches(self, split: str, train: bool, epoch: int) -> Any:
        gen = torch.Generator().manual_seed(self.h.seed * 100_003 + epoch) if train else None
        batches = index_batches(self.rows[split], self.h.batch_size, gen)
        preps = self.built.preps_train if train else self.built.preps_eval
        return iterate(self.ds.records, preps, self.encoders_raw, batches, self.cfg.workers,
                       seed=self.h.seed * 100_003 + epoch)

    def _drop_tokens(self, raw: dict[str, Any], gen: torch.Generator) -> None:
        for name, (present, batch) in raw.items():
            if batch is not None and self.model.plans[name].enc.modality == "text" and self.cfg.token_dropout > 0:
                rid, ends = dropout_ids(self.model.plans[name].enc.tokenizer)  # [UNK]; lstm: no [CLS]/[SEP]
                batch["input_ids"] = token_dropout(batch["input_ids"], batch["attention_mask"], self.cfg.token_dropout,
                                                   gen, replace_id=rid, keep_ends=ends)

    @torch.no_grad()
    def predict(self, split: str) -> np.ndarray:
        self.model.eval()
        out = []
        for idx, _, raw in self._batches(split, False, 0):
            out.append(torch.sigmoid(self.model(idx.to(self.device), raw).float()).cpu())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def train_stats(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Mean and std (unbiased, >= 1e-6) of every backbone's pooled features over the present
        train rows, from the model as built (pretrained, eval mode): the fixed z-scoring of
        `--standardize`, as train-head's (cache.features.FeatureSet.standardize) on a frozen cache."""
        self.model.eval()
        sums: dict[str, list[torch.Tensor]] = {m: [] for m in self.model.plans}
        for idx, _, raw in self._batches("train", False, 0):
            out = self.model.features(idx.to(self.device), raw, normalize=False)
            for m in sums:
                sums[m].append(out[m][out[f"{m}.present"]].double())
        stats = {}
        for m, parts in sums.items():
            x = torch.cat(parts)
            if len(x) < 2:
                raise ValueError(f"backbone {m}: fewer than 2 train rows have it; --no-standardize skips z-scoring")
            stats[m] = (x.mean(0).float(), x.std(0).float().clamp_min(1e-6))
        return stats

    # ---- the run ----------------------------------------------------------------------
    def run(self, key: str) -> Trained:
        t0 = time.perf_counter()
        cfg, h, model, dev = self.cfg, self.h, self.model, self.device
        y_train = self.Y[self.rows["train"]].numpy().astype(np.uint8)
        pos_weight = pos_weight_from_labels(y_train).to(dev) if needs_pos_weight(h.loss) else None
        loss_fn = create_loss(h.loss, pos_weight=pos_weight, label_smoothing=h.label_smoothing,
                              label_smoothing_form=h.label_smoothing_form, **h.loss_kw)
        plans = list(model.plans.values())
        opt = OPTIMIZERS[h.optimizer](param_groups(model.head, plans, h.lr, cfg.backbone_lr, cfg.layer_decay), h)
        # warmup counts optimiser steps: with --grad-accum K, one per K batches
        warmup, sched, warmup_steps = schedules(opt, h, -(-len(self.rows["train"]) // (h.batch_size * cfg.grad_accum)))
        amp, scaler = amp_context(cfg, dev)
        keep = trainable_names(model, plans, model.head)
        y_dev = self.Y[self.rows["dev"]].numpy().astype(np.uint8)

        torch.manual_seed(h.seed)  # dropout and worker-free augmentation draws
        s = {"epoch": -1, "step": 0, "best": -1.0, "best_epoch": -1, "bad": 0, "history": [],
             "best_state": None, "seconds": 0.0, "epoch_seconds": []}
        saved = ckpt.load(self.ckpt_path, key) if cfg.resume else None
        if saved is not None:
            model.load_state_dict(saved["model"], strict=False)
            opt.load_state_dict(saved["optimizer"])
            for obj, k in ((warmup, "warmup"), (sched, "sched"), (scaler, "scaler")):
                if obj is not None:
                    obj.load_state_dict(saved[k])
            ckpt.set_rng_state(saved["rng"])
            s = saved["loop"]
            print(f"resumed from {self.ckpt_path} after epoch {s['epoch']}", flush=True)

        bar = tqdm(range(s["epoch"] + 1, h.max_epochs), desc="finetune", unit="ep", disable=not self.progress,
                   leave=False)
        for epoch in bar:
            if s["bad"] >= h.patience:
                break
            te = time.perf_counter()
            for p in plans:
                model.n_units[p.name] = units_at(p, epoch, cfg.unfreeze_every)
                set_trainable(p, model.n_units[p.name])
            model.train()
            gen = torch.Generator().manual_seed(h.seed * 7919 + epoch)  # token dropout draws
            total, n_seen, micro = torch.zeros((), device=dev), 0, 0
            batches = self._batches("train", True, epoch)
            n_batches = -(-len(self.rows["train"]) // h.batch_size)
            opt.zero_grad(set_to_none=True)
            for idx, _, raw in tqdm(batches, total=n_batches, desc=f"epoch {epoch}", unit="batch",
                                    disable=not self.progress, leave=False):
                self._drop_tokens(raw, gen)
                idx = idx.to(dev)
                with amp:
                    logits = model(idx, raw)
                loss = model.head.training_loss(logits.float(), self.Y[idx.cpu()].to(dev), loss_fn)
                (scaler.scale(loss / cfg.grad_accum) if scaler else loss / cfg.grad_accum).backward()
                micro += 1
                total += loss.detach() * len(idx)
                n_seen += len(idx)
                if micro % cfg.grad_accum == 0 or micro == n_batches:
                    self._step(opt, scaler)
                    s["step"] += 1
                    if warmup is not None and s["step"] <= warmup_steps:
                        warmup.step()
            dev_probs = self.predict("dev")
            score = macro_f1_at(dev_probs, y_dev, run_thresholds(h, dev_probs, y_dev))
            s["history"].append({"epoch": epoch, "train_loss": float(total) / max(n_seen, 1),
                                 "dev_macro_f1": score, "lr": opt.param_groups[0]["lr"],
                                 "backbone_lr": max((g["lr"] for g in opt.param_groups[1:]), default=0.0)})
            bar.set_postfix(loss=f"{s['history'][-1]['train_loss']:.4f}", dev_f1=f"{score:.4f}")
            if score > s["best"] + h.min_delta:
                s["best"], s["best_epoch"], s["bad"] = score, epoch, 0
                full = model.state_dict()
                s["best_state"] = {k: full[k].detach().cpu().clone() for k in keep}
            else:
                s["bad"] += 1
            if s["step"] > warmup_steps:
                step_epoch_schedule(sched, score)
            s["epoch"] = epoch
            s["epoch_seconds"].append(time.perf_counter() - te)
            s["seconds"] += s["epoch_seconds"][-1]
            self._save(key, model, keep, opt, warmup, sched, scaler, s)
        bar.close()
        model.load_state_dict(s["best_state"], strict=False)
        return Trained(model, s["history"], s["best_epoch"], s["seconds"], s["epoch_seconds"])

    def _step(self, opt: torch.optim.Optimizer, scaler: Any) -> None:
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if scaler is not None:
            scaler.unscale_(opt)
        if self.h.grad_clip > 0 and params:
            torch.nn.utils.clip_grad_norm_(params, self.h.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

    def _save(self, key: str, model: JointModel, keep: list[str], opt: Any, warmup: Any, sched: Any,
              scaler: Any, s: dict[str, Any]) -> None:
        full = model.state_dict()
        state = {"key": key, "model": {k: full[k].detach().cpu() for k in keep}, "optimizer": opt.state_dict(),
                 "rng": ckpt.rng_state(), "loop": copy.copy(s)}
        for obj, k in ((warmup, "warmup"), (sched, "sched"), (scaler, "scaler")):
            if obj is not None:
                state[k] = obj.state_dict()
        ckpt.save(self.ckpt_path, state)
