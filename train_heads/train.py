"""The head training loop, in one readable file.

AdamW + optional linear warmup + ReduceLROnPlateau/cosine, gradient clipping, early
stopping on dev macro-F1 (thresholds tuned on dev with the run's strategy), the best
epoch's weights kept, AMP (bf16) on CUDA. Batches are index slices of a seeded
permutation of the in-memory feature tensors; nothing is read from disk per step.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cache.features import FeatureSet, load_features
from extract.device import pick_device
from train_heads.config import HeadConfig
from train_heads.fusion import create_fusion
from train_heads.fusion.base import FusionHead
from train_heads.losses import create_loss, needs_pos_weight, pos_weight_from_labels
from train_heads.metrics import compute_metrics
from train_heads.thresholds import apply_thresholds, macro_f1_at, tune_thresholds


@dataclass
class TrainResult:
    head: FusionHead
    fs: FeatureSet
    history: list[dict[str, float]]
    best_epoch: int
    thresholds: np.ndarray  # (C,)
    probs: dict[str, np.ndarray]  # split -> (N_split, C)
    norm: dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality -> train (mean, std), or {}
    rows: dict[str, np.ndarray]  # split -> row indices into fs
    seconds: float


def build_head(cfg: HeadConfig, fs: FeatureSet) -> FusionHead:
    torch.manual_seed(cfg.seed)
    return create_fusion(cfg.fusion, fs.dims, len(fs.label_names), token_dims=fs.token_dims or None,
                         **cfg.fusion_kw)


@torch.no_grad()
def predict_probs(head: FusionHead, fs: FeatureSet, rows: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    head.eval()
    out = [torch.sigmoid(head(fs.batch(rows[i:i + batch_size])).float())
           for i in range(0, len(rows), batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, len(fs.label_names)), np.float32)


def _dev_score(cfg: HeadConfig, probs: np.ndarray, y: np.ndarray) -> float:
    """Dev macro-F1 with thresholds tuned on dev by the run's strategy (early-stopping score)."""
    return macro_f1_at(probs, y, tune_thresholds(cfg.threshold, probs, y))


def train(cfg: HeadConfig, fs: FeatureSet | None = None, progress: bool = True) -> TrainResult:
    """Train one head on cached features; returns the best-epoch head and its predictions."""
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    if fs is None:
        from train_heads.fusion import FUSIONS

        fs = load_features(cfg.features, tokens=cfg.tokens and FUSIONS[cfg.fusion].uses_tokens)
    fs = fs.to(device)  # a copy: standardizing below does not touch the caller's tensors
    rows = {s: fs.rows(s) for s in ("train", "dev", "test")}
    if cfg.train_on_unsplit:
        rows["train"] = torch.cat([rows["train"], fs.rows("none")])
    norm = fs.standardize(rows["train"]) if cfg.standardize else {}
    for s, r in rows.items():
        if len(r) == 0:
            raise ValueError(f"the caches have no {s!r} rows; the data set needs a train/dev/test split")
    y = {s: fs.Y[r].cpu().numpy().astype(np.uint8) for s, r in rows.items()}

    head = build_head(cfg, fs).to(device)
    pos_weight = pos_weight_from_labels(y["train"]).to(device) if needs_pos_weight(cfg.loss) else None
    loss_fn = create_loss(cfg.loss, pos_weight=pos_weight, label_smoothing=cfg.label_smoothing, **cfg.loss_kw)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_train = len(rows["train"])
    steps_per_epoch = (n_train + cfg.batch_size - 1) // cfg.batch_size
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    warmup = (torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warmup_steps)
              if warmup_steps > 0 else None)
    epoch_sched: Any = None
    if cfg.scheduler == "plateau":
        epoch_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                                 patience=max(1, cfg.patience // 3))
    elif cfg.scheduler == "cosine":
        epoch_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    gen = torch.Generator().manual_seed(cfg.seed)

    best, best_epoch, best_state, bad, step = -1.0, -1, None, 0, 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(cfg.max_epochs), desc=f"train {cfg.fusion}", unit="ep", disable=not progress, leave=False)
    for epoch in bar:
        head.train()
        perm = rows["train"][torch.randperm(n_train, generator=gen).to(device)]
        total = torch.zeros((), device=device)  # summed on device: no sync per step
        for i in range(0, n_train, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            with amp:
                loss = loss_fn(head(fs.batch(idx)).float(), fs.Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            if warmup is not None and step <= warmup_steps:
                warmup.step()
            total += loss.detach() * len(idx)
        total = float(total)
        dev_probs = predict_probs(head, fs, rows["dev"])
        score = _dev_score(cfg, dev_probs, y["dev"])
        history.append({"epoch": epoch, "train_loss": total / n_train, "dev_macro_f1": score,
                        "lr": opt.param_groups[0]["lr"]})
        bar.set_postfix(loss=f"{total / n_train:.4f}", dev_f1=f"{score:.4f}")
        if score > best + cfg.min_delta:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(head.state_dict())
        else:
            bad += 1
        if step > warmup_steps:
            if cfg.scheduler == "plateau":
                epoch_sched.step(score)
            elif epoch_sched is not None:
                epoch_sched.step()
        if bad >= cfg.patience:
            break
    bar.close()
    assert best_state is not None
    head.load_state_dict(best_state)
    probs = {s: predict_probs(head, fs, r) for s, r in rows.items()}
    thr = tune_thresholds(cfg.threshold, probs["dev"], y["dev"])
    return TrainResult(head, fs, history, best_epoch, thr, probs, norm,
                       {s: r.cpu().numpy() for s, r in rows.items()}, time.perf_counter() - t0)


def evaluate(res: TrainResult) -> dict[str, Any]:
    """Test (and dev) metrics for the tuned thresholds and for a fixed 0.5."""
    names = res.fs.label_names
    out: dict[str, Any] = {"best_epoch": res.best_epoch, "epochs": len(res.history),
                           "thresholds": [round(float(t), 4) for t in res.thresholds]}
    for s in ("dev", "test"):
        y = res.fs.Y[torch.from_numpy(res.rows[s]).to(res.fs.Y.device)].cpu().numpy().astype(np.uint8)
        p = res.probs[s]
        out[s] = compute_metrics(y, p, apply_thresholds(p, res.thresholds), names)
        out[f"{s}@0.5"] = compute_metrics(y, p, apply_thresholds(p, np.full(len(names), 0.5)), names)
    return out
