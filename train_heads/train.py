"""The head training loop, in one readable file.

An optimiser from ``OPTIMIZERS`` (AdamW by default; Adam, SGD with momentum) + optional
linear warmup + ReduceLROnPlateau/cosine, gradient clipping, early stopping on dev
macro-F1 (thresholds tuned on dev with the run's strategy and grid), the best epoch's
weights kept, AMP (bf16) on CUDA. Batches are index slices of a seeded permutation of the
in-memory feature tensors; nothing is read from disk per step.

ReduceLROnPlateau (paper 001 eq. 3.33, ``lr_new = lr_old * factor``) steps on the dev
macro-F1 after warmup, as paper 000 does ("activated after warmup"), with
``--plateau-factor``, ``--plateau-patience`` and ``--min-lr``; cosine decays to ``--min-lr``.
With ``--calibrate temperature`` one temperature T (Guo et al. 2017, calibration.py) is
fitted on the best epoch's dev probabilities and applied to every split before the
thresholds are tuned, so the saved probabilities and thresholds are the calibrated ones.

A head with ``solver == "lbfgs"`` (the linear head's ``-o solver=lbfgs``) is fitted
full-batch with L-BFGS instead, ``LBFGS_ITERS_PER_EPOCH`` iterations per epoch, with
the same dev scoring, early stopping and best-epoch weights (no optimiser, scheduler or
warmup settings apply).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from cache.features import FeatureSet, load_features
from extract.device import pick_device
from train_heads.config import HeadConfig
from train_heads.fusion import create_fusion
from train_heads.fusion.base import FusionHead
from train_heads.missing import drop_modalities
from train_heads.losses import create_loss, needs_pos_weight, pos_weight_from_labels
from train_heads.metrics import tuned_and_at_half
from train_heads.optimizers import OPTIMIZERS
from train_heads.thresholds import macro_f1_at, parse_grid, strategy_options, tune_thresholds

# Feature names that say what a cache holds: `-f text=<image cache>` is a mistake, while
# free names (poster, plot_minilm...) may hold anything.
MODALITY_KINDS = ("image", "text")
LBFGS_ITERS_PER_EPOCH = 10  # L-BFGS iterations between two dev evaluations


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
    temperature: float | None = None  # --calibrate temperature: T applied to `probs`; None: not calibrated


def build_head(cfg: HeadConfig, fs: FeatureSet) -> FusionHead:
    torch.manual_seed(cfg.seed)
    head = create_fusion(cfg.fusion, fs.dims, len(fs.label_names), token_dims=fs.token_dims or None,
                         **cfg.fusion_kw)
    if fs.label_extras and hasattr(head, "use_label_extras"):
        # per-label arrays of metadata caches (the KG's genre embeddings -> IDKG's G-CACL anchors)
        head.use_label_extras(fs.label_extras)
    return head


def uses_lbfgs(head_or_cfg: FusionHead | HeadConfig) -> bool:
    """Whether a head (or a config's head, with its default solver) is fitted by L-BFGS."""
    if isinstance(head_or_cfg, HeadConfig):
        from train_heads.fusion import head_options

        opt = head_options(head_or_cfg.fusion).get("solver")
        return opt is not None and head_or_cfg.fusion_kw.get("solver", opt.default) == "lbfgs"
    return getattr(head_or_cfg, "solver", None) == "lbfgs"


def check_head(cfg: HeadConfig, sources: dict[str, dict[str, Any]]) -> None:
    """Build the head on the meta device (no memory, no compute) from the cache headers
    (runs.cache_sources), so that option values only the head can judge (an unknown gate,
    solver, modality...) fail before the features are loaded and trained on."""
    from train_heads.fusion import FUSIONS

    tokens = cfg.tokens and FUSIONS[cfg.fusion].uses_tokens
    token_dims = {m: s["token_dim"] for m, s in sources.items() if tokens and s.get("token_dim")}
    num_classes = next(iter(sources.values()))["num_labels"]
    with torch.device("meta"):
        create_fusion(cfg.fusion, {m: s["dim"] for m, s in sources.items()}, num_classes,
                      token_dims=token_dims or None, **cfg.fusion_kw)


@torch.no_grad()
def predict_probs(head: FusionHead, fs: FeatureSet, rows: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    head.eval()
    out = [torch.sigmoid(head(fs.batch(rows[i:i + batch_size])).float())
           for i in range(0, len(rows), batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, len(fs.label_names)), np.float32)


def run_thresholds(cfg: HeadConfig, probs_dev: np.ndarray, y_dev: np.ndarray) -> np.ndarray:
    """Thresholds (C,) by the run's strategy on its grid (--threshold-grid) or at its fixed
    value (--fixed-threshold): the same rule for the early-stopping score and the final ones."""
    kw = strategy_options(cfg.threshold, grid=parse_grid(cfg.threshold_grid), threshold=cfg.fixed_threshold)
    return tune_thresholds(cfg.threshold, probs_dev, y_dev, **kw)


def _dev_score(cfg: HeadConfig, probs: np.ndarray, y: np.ndarray) -> float:
    """Dev macro-F1 with thresholds tuned on dev by the run's strategy (early-stopping score)."""
    return macro_f1_at(probs, y, run_thresholds(cfg, probs, y))


def standardized(cfg: HeadConfig, fs: FeatureSet, train_rows: torch.Tensor) -> list[str]:
    """Modalities z-scored with train statistics: all (--standardize), none
    (--no-standardize), or by default ("auto", None) every modality except sparse ones
    (FeatureSet.sparse_modalities: TF-IDF, multi-hot), which keep their raw values. The
    choice is recorded in config.json (`standardized`) and printed by train-head."""
    if cfg.standardize is None:
        sparse = set(fs.sparse_modalities(train_rows))
        return [m for m in fs.modalities if m not in sparse]
    return list(fs.modalities) if cfg.standardize else []


def check_modalities(sources: dict[str, dict[str, Any]]) -> None:
    """Refuse `-f image=<a text cache>` (and the reverse): a feature named after a modality
    kind must come from a cache of that modality (its `modality` attr). Other names are free."""
    for name, src in sorted(sources.items()):
        kind = src.get("modality")
        if name in MODALITY_KINDS and kind and kind != name:
            raise ValueError(f"--features {name}={src.get('path')}: that cache holds {kind} features "
                             f"(encoder {src.get('encoder')}); pass it as {kind}=... or give a {name} cache")


def train(cfg: HeadConfig, fs: FeatureSet | None = None, progress: bool = True) -> TrainResult:
    """Train one head on cached features; returns the best-epoch head and its predictions."""
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    if fs is None:
        from train_heads.fusion import FUSIONS

        fs = load_features(cfg.features, tokens=cfg.tokens and FUSIONS[cfg.fusion].uses_tokens)
    check_modalities(fs.sources)
    fs = fs.to(device)  # a copy: standardizing below does not touch the caller's tensors
    rows = {s: fs.rows(s) for s in ("train", "dev", "test")}
    if cfg.train_on_unsplit:
        rows["train"] = torch.cat([rows["train"], fs.rows("none")])
    for s, r in rows.items():
        if len(r) == 0:
            raise ValueError(f"the caches have no {s!r} rows; the data set needs a train/dev/test split")
    fs.check_present(rows["train"])  # a modality absent from every train row teaches the head nothing
    norm = fs.standardize(rows["train"], only=standardized(cfg, fs, rows["train"]))
    y = {s: fs.Y[r].cpu().numpy().astype(np.uint8) for s, r in rows.items()}

    head = build_head(cfg, fs).to(device)
    pos_weight = pos_weight_from_labels(y["train"]).to(device) if needs_pos_weight(cfg.loss) else None
    loss_fn = create_loss(cfg.loss, pos_weight=pos_weight, label_smoothing=cfg.label_smoothing,
                          label_smoothing_form=cfg.label_smoothing_form, **cfg.loss_kw)
    if uses_lbfgs(head):
        step_epoch, epoch_sched, warmup_steps = _lbfgs(head, fs, rows["train"], loss_fn), None, 0
    else:
        step_epoch, epoch_sched, warmup_steps = _minibatch(cfg, head, fs, rows["train"], loss_fn, device)

    best, best_epoch, best_state, bad = -1.0, -1, None, 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(cfg.max_epochs), desc=f"train {cfg.fusion}", unit="ep", disable=not progress, leave=False)
    for epoch in bar:
        head.train()
        train_loss, lr, step = step_epoch()
        dev_probs = predict_probs(head, fs, rows["dev"])
        score = _dev_score(cfg, dev_probs, y["dev"])
        history.append({"epoch": epoch, "train_loss": train_loss, "dev_macro_f1": score, "lr": lr})
        bar.set_postfix(loss=f"{train_loss:.4f}", dev_f1=f"{score:.4f}")
        if score > best + cfg.min_delta:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(head.state_dict())
        else:
            bad += 1
        if step > warmup_steps:
            step_epoch_schedule(epoch_sched, score)
        if bad >= cfg.patience:
            break
    bar.close()
    assert best_state is not None
    head.load_state_dict(best_state)
    probs = {s: predict_probs(head, fs, r) for s, r in rows.items()}
    temperature = None
    if cfg.calibrate == "temperature":  # before the thresholds: they are tuned on what is saved
        from train_heads.calibration import apply_temperature, fit_temperature

        temperature = fit_temperature(probs["dev"], y["dev"])
        probs = {s: apply_temperature(p, temperature) for s, p in probs.items()}
    thr = run_thresholds(cfg, probs["dev"], y["dev"])
    return TrainResult(head, fs, history, best_epoch, thr, probs, norm,
                       {s: r.cpu().numpy() for s, r in rows.items()}, time.perf_counter() - t0, temperature)


def schedules(opt: torch.optim.Optimizer, cfg: HeadConfig, steps_per_epoch: int) -> tuple[Any, Any, int]:
    """(warmup scheduler or None, per-epoch scheduler or None, warmup steps): linear warmup
    from 1% of each group's lr over `warmup_epochs`, then ReduceLROnPlateau on dev macro-F1
    (paper 001 eq. 3.33: lr * factor after `patience` flat epochs) or cosine to `min_lr`."""
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
    warmup = (torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warmup_steps)
              if warmup_steps > 0 else None)
    epoch_sched: Any = None
    if cfg.scheduler == "plateau":
        epoch_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience_used(), min_lr=cfg.min_lr)
    elif cfg.scheduler == "cosine":
        epoch_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_epochs, eta_min=cfg.min_lr)
    return warmup, epoch_sched, warmup_steps


def step_epoch_schedule(epoch_sched: Any, dev_score: float) -> None:
    """One per-epoch scheduler step after warmup: plateau reads the dev score, cosine does not."""
    if isinstance(epoch_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        epoch_sched.step(dev_score)
    elif epoch_sched is not None:
        epoch_sched.step()


EpochFn = Callable[[], tuple[float, float, int]]  # one epoch -> (mean train loss, lr, steps so far)


def _minibatch(cfg: HeadConfig, head: FusionHead, fs: FeatureSet, train_rows: torch.Tensor, loss_fn: Any,
               device: torch.device) -> tuple[EpochFn, Any, int]:
    """Mini-batch training with the run's optimiser (OPTIMIZERS), warmup, gradient clipping and
    bf16 autocast on CUDA; returns the epoch function, the per-epoch scheduler (or None) and
    the number of warmup steps."""
    opt = OPTIMIZERS[cfg.optimizer](head.parameters(), cfg)
    n_train = len(train_rows)
    warmup, epoch_sched, warmup_steps = schedules(opt, cfg, (n_train + cfg.batch_size - 1) // cfg.batch_size)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else torch.autocast("cpu", enabled=False))
    gen = torch.Generator().manual_seed(cfg.seed)
    # its own stream, so --modality-dropout 0 leaves the batch order (and the numbers) as before
    drop_gen = torch.Generator().manual_seed(cfg.seed + 1)
    step = 0

    def epoch() -> tuple[float, float, int]:
        nonlocal step
        perm = train_rows[torch.randperm(n_train, generator=gen).to(device)]
        total = torch.zeros((), device=device)  # summed on device: no sync per step
        for i in range(0, n_train, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            feats = fs.batch(idx)
            if cfg.modality_dropout > 0:
                feats = drop_modalities(feats, fs.modalities, cfg.modality_dropout, drop_gen)
            with amp:
                loss = head.training_loss(head(feats).float(), fs.Y[idx], loss_fn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            if warmup is not None and step <= warmup_steps:
                warmup.step()
            total += loss.detach() * len(idx)
        return float(total) / n_train, opt.param_groups[0]["lr"], step

    return epoch, epoch_sched, warmup_steps


def _lbfgs(head: FusionHead, fs: FeatureSet, train_rows: torch.Tensor, loss_fn: Any) -> EpochFn:
    """Full-batch L-BFGS on loss + head.l2_penalty(n) (sklearn's L2, see fusion/linear.py).
    Deterministic: no sampling, no dropout in a linear head; fp32 even on CUDA."""
    feats, y = fs.batch(train_rows), fs.Y[train_rows]  # the whole train split, (n, ...)
    n = len(train_rows)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=LBFGS_ITERS_PER_EPOCH, history_size=20,
                            line_search_fn="strong_wolfe")
    step = 0

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = head.training_loss(head(feats).float(), y, loss_fn) + head.l2_penalty(n)
        loss.backward()
        return loss

    def epoch() -> tuple[float, float, int]:
        nonlocal step
        opt.step(closure)
        step += LBFGS_ITERS_PER_EPOCH
        with torch.no_grad():
            return float(loss_fn(head(feats).float(), y)), 1.0, step

    return epoch


def evaluate(res: TrainResult) -> dict[str, Any]:
    """Test (and dev) metrics for the run's thresholds and for a fixed 0.5 (``<split>@0.5``),
    plus the calibration ``temperature`` when one was fitted."""
    names = res.fs.label_names
    out: dict[str, Any] = {"best_epoch": res.best_epoch, "epochs": len(res.history),
                           "thresholds": [round(float(t), 4) for t in res.thresholds]}
    if res.temperature is not None:
        out["temperature"] = float(res.temperature)
    for s in ("dev", "test"):
        y = res.fs.Y[torch.from_numpy(res.rows[s]).to(res.fs.Y.device)].cpu().numpy().astype(np.uint8)
        out[s], out[f"{s}@0.5"] = tuned_and_at_half(y, res.probs[s], res.thresholds, names)
    return out
