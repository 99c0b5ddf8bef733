"""Run folders: `runs/<name>/` with everything needed to trace and recompute a result.

    config.json        resolved HeadConfig + cache provenance (paths, settings hashes, checksums)
    metrics.json       dev/test metrics (tuned thresholds and 0.5); same seed -> same file
    timing.json        wall time, epochs (kept apart so metrics.json is reproducible)
    history.json       per-epoch train loss, dev macro-F1, lr
    per_genre.md/.csv  test P/R/F1/support per genre
    predictions_{dev,test}.csv   id, y_<genre>..., p_<genre>...
    explain_test.npz   interpretable internals on test (GMU gates, late alpha...), if any
    head.pt            state dict + what is needed to rebuild the head
    curve.png          training curve
The folder is written under a temporary name (`.<name>.tmp-<pid>`) and renamed when
complete; any error while writing removes the temporary folder and leaves an older run of
the same name untouched. `existing_run` (with cache.store.check_out_folder) lets the CLI
refuse an unwritable `--out` and report an already trained run BEFORE any training.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train_heads.config import HeadConfig
from train_heads.metrics import format_table, per_class_table
from train_heads.thresholds import apply_thresholds
from train_heads.train import TrainResult, evaluate


def run_name(cfg: HeadConfig, sources: dict[str, dict[str, Any]]) -> str:
    """--name, else the default name from the settings, cache hashes and encoder names."""
    return cfg.name or cfg.default_name({m: s["settings_hash"] for m, s in sources.items()},
                                        {m: s.get("encoder") for m, s in sources.items()})


def cache_sources(cfg: HeadConfig) -> dict[str, dict[str, Any]]:
    """What run_name, existing_run and train.check_head need from each cache (path, settings
    hash, encoder, modality, dims, label count), from the headers only: cheap, before any
    features are loaded."""
    from cache.read import open_info

    out = {}
    for m, p in cfg.features.items():
        info = open_info(p)
        a = info.attrs
        out[m] = {"path": str(p), "settings_hash": a.get("settings_hash"), "encoder": a.get("encoder"),
                  "modality": a.get("modality"), "dim": info.dim, "num_labels": len(info.label_names),
                  "token_dim": info.token_shape[1] if info.token_shape else None}
    return out


NOT_FINISHED = "it is not a finished run folder (no readable config.json / metrics.json)"


def finished_config(path: Path) -> dict[str, Any] | None:
    """A run folder's config.json when the folder holds a finished run (config.json readable,
    metrics.json present), else None."""
    try:
        old = json.loads((path / "config.json").read_text())
        (path / "metrics.json").stat()
    except (OSError, ValueError):
        return None
    return old


def existing_run(cfg: HeadConfig, sources: dict[str, dict[str, Any]]) -> tuple[Path, str | None]:
    """(run folder path, None) if nothing is there yet; else (path, why) where why is
    "same" when that folder is a finished run with the same settings and caches (settings
    hashes), or one line saying how it differs."""
    path = Path(cfg.out) / run_name(cfg, sources)
    if not path.exists():
        return path, None
    old = finished_config(path)
    if old is None:
        return path, NOT_FINISHED
    if _old_key(old) == cfg.key({m: s["settings_hash"] for m, s in sources.items()}):
        return path, "same"
    return path, "it was trained with different settings or caches"


def _old_key(config_json: dict[str, Any]) -> str | None:
    """HeadConfig.key of a finished run (settings + cache hashes), None if its config no
    longer validates (it cannot then be the same run)."""
    try:
        cfg = HeadConfig(**config_json["config"])
    except (TypeError, ValueError, KeyError):
        return None
    return cfg.key({m: s.get("settings_hash") for m, s in config_json.get("sources", {}).items()})


def write_run(cfg: HeadConfig, res: TrainResult, extra: dict[str, dict[str, Any]] | None = None
              ) -> tuple[Path, dict[str, Any]]:
    """Write the run folder atomically; returns (path, metrics). An existing folder of the
    same name is replaced only once the new one is complete. On any error the temporary
    folder is removed and the error re-raised (an OSError names its path). `extra` adds keys
    to config.json ("config") and timing.json ("timing"), e.g. a fine-tuning run's settings."""
    name = run_name(cfg, res.fs.sources)
    final = Path(cfg.out) / name
    tmp = Path(cfg.out) / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        metrics = _write_files(tmp, name, cfg, res, extra or {})
        swap_in(tmp, final)
    except BaseException as e:  # disk full, read-only, Ctrl-C...: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and (e.filename is None or str(tmp) in str(e.filename)):
            # A failed write() names no file, and the temporary name is gone: name the run folder.
            raise type(e)(e.errno, e.strerror or str(e), str(final)) from e
        raise
    return final, metrics


def swap_in(tmp: Path, final: Path) -> None:
    """Rename tmp to final; an old final is moved aside first and restored if that fails."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}") if final.exists() else None
    if old is not None:
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_files(tmp: Path, name: str, cfg: HeadConfig, res: TrainResult,
                 extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    tmp.mkdir(parents=True)
    metrics = evaluate(res)
    n_params = sum(p.numel() for p in res.head.parameters())
    config = {"config": asdict(cfg), "name": name, "sources": res.fs.sources,
              "head": {"fusion": cfg.fusion, "params": n_params, "dims": res.fs.dims,
                       "token_dims": res.fs.token_dims, "uses_tokens": res.head.uses_tokens,
                       "token_input": {m: ("tokens" if m in res.fs.tokens else "pooled-as-one-token")
                                       for m in res.fs.modalities} if res.head.uses_tokens else None},
              "label_names": res.fs.label_names,
              "standardized": {m: m in res.norm for m in res.fs.modalities},
              "rows": {s: int(len(r)) for s, r in res.rows.items()},
              "versions": {"torch": torch.__version__, "numpy": np.__version__,
                           "python": platform.python_version()},
              **extra.get("config", {})}
    dump_json(tmp / "config.json", config)
    dump_json(tmp / "metrics.json", metrics)
    dump_json(tmp / "timing.json", {"train_seconds": round(res.seconds, 3), "epochs": len(res.history),
                                    "params": n_params, **extra.get("timing", {})})
    dump_json(tmp / "history.json", res.history)
    y_test = res.fs.Y[torch.from_numpy(res.rows["test"]).to(res.fs.Y.device)].cpu().numpy().astype(np.uint8)
    table = per_class_table(y_test, apply_thresholds(res.probs["test"], res.thresholds), res.fs.label_names,
                            thresholds=res.thresholds, probs=res.probs["test"])
    (tmp / "per_genre.md").write_text(format_table(table) + "\n")
    write_csv(tmp / "per_genre.csv", table)
    for s in ("dev", "test"):
        _write_predictions(tmp / f"predictions_{s}.csv", res, s)
    _write_explain(tmp / "explain_test.npz", res)
    with open(tmp / "head.pt", "wb") as f:  # a Python file: a full disk is an OSError, not a RuntimeError
        torch.save({"state_dict": {k: v.cpu() for k, v in res.head.state_dict().items()},
                    "fusion": cfg.fusion, "fusion_kw": cfg.fusion_kw, "dims": res.fs.dims,
                    "token_dims": res.fs.token_dims, "label_names": res.fs.label_names,
                    "thresholds": res.thresholds, "sources": res.fs.sources,
                    "temperature": res.temperature,  # --calibrate temperature: T (None: not calibrated)
                    "norm": {m: (a.cpu(), b.cpu()) for m, (a, b) in res.norm.items()}}, f)
    plot_curve(res.history, tmp / "curve.png", title=name)
    return metrics


def dump_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """json.dumps(default=...) for numpy scalars and arrays (anything else as str)."""
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _write_predictions(path: Path, res: TrainResult, split: str) -> None:
    names = res.fs.label_names
    r = res.rows[split]
    y = res.fs.Y.cpu().numpy()[r].astype(np.uint8)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", *[f"y_{n}" for n in names], *[f"p_{n}" for n in names]])
        for i, row in enumerate(r):
            w.writerow([res.fs.ids[row], *y[i].tolist(), *[f"{p:.6f}" for p in res.probs[split][i]]])


def load_predictions(run: str | Path, split: str = "test") -> dict[str, Any]:
    """ids (N,), y (N, C) uint8, probs (N, C) (rows sorted by id), thresholds (C,), label_names."""
    run = Path(run)
    path = run / f"predictions_{split}.csv"
    if not path.is_file() or not (run / "metrics.json").is_file():
        raise FileNotFoundError(f"{run} is not a finished run folder (no {path.name} / metrics.json)")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        body = list(reader)
    names = [h[2:] for h in header if h.startswith("y_")]
    C = len(names)
    ids = np.array([r[0] for r in body], dtype=object)
    arr = np.array([r[1:] for r in body], dtype=np.float64).reshape(len(body), 2 * C)
    thr = np.asarray(json.loads((run / "metrics.json").read_text())["thresholds"], dtype=np.float64)
    o = np.argsort(ids, kind="stable")
    return {"ids": ids[o], "y": arr[o, :C].astype(np.uint8), "probs": arr[o, C:], "thresholds": thr,
            "label_names": names}


@torch.no_grad()
def _write_explain(path: Path, res: TrainResult) -> None:
    res.head.eval()
    rows = torch.from_numpy(res.rows["test"]).to(res.fs.Y.device)
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(rows), 4096):
        res.head(res.fs.batch(rows[i:i + 4096]))
        for k, v in res.head.explain().items():
            if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == len(rows[i:i + 4096]):
                parts.setdefault(k, []).append(v.float().cpu().numpy())
            elif isinstance(v, torch.Tensor) and i == 0:
                parts.setdefault(k, []).append(v.float().cpu().numpy()[None])
    if parts:
        np.savez(path, ids=res.fs.ids[res.rows["test"]].astype(str),
                 **{k: np.concatenate(v) for k, v in parts.items()})


def plot_curve(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(ep, [h["train_loss"] for h in history], color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(ep, [h["dev_macro_f1"] for h in history], color="tab:red", label="dev macro-F1")
    ax2.set_ylabel("dev macro-F1", color="tab:red")
    ax1.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_and_write(cfg: HeadConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    from train_heads.train import train

    return write_run(cfg, train(cfg, progress=progress))
