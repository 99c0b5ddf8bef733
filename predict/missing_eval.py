"""Evaluate a trained head with modalities missing (train_heads/missing.py has the protocol).

The run's head, its train-split standardisation, calibration temperature and dev-tuned
thresholds are used unchanged (the protocol tunes on full-modality data); the chosen rows of
the evaluated split lose a modality exactly as a missing poster is fed. Ratio 0 reproduces
the run's own metrics.json numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.features import load_features
from predict.predictor import head_reads, load_checkpoint, resolve_cache
from train_heads.calibration import apply_temperature
from train_heads.fusion import create_fusion
from train_heads.metrics import tuned_and_at_half
from train_heads.missing import choose_missing, mask_rows, parse_spec


def evaluate_missing(run: str | Path, specs: list[str], seed: int = 0, split: str = "test") -> dict[str, Any]:
    """{"run", "split", "seed", "modalities", "results": [{kind, ratio, missing ids, metrics}]}."""
    run = Path(run)
    ck = load_checkpoint(run)
    head = create_fusion(ck["fusion"], ck["dims"], len(ck["label_names"]),
                         token_dims=ck.get("token_dims") or None, **(ck.get("fusion_kw") or {}))
    head.load_state_dict(ck["state_dict"])
    head.eval()
    mods = sorted(ck["dims"]) if not getattr(head, "modality", None) else head_reads(head)
    parsed = [parse_spec(s, mods) for s in specs]  # every spec checked before any work
    caches = {m: resolve_cache(src, m, run)[0].path for m, src in ck["sources"].items()}
    fs = load_features(caches, tokens=any(src.get("tokens_used") for src in ck["sources"].values()))
    fs.apply_standardize({m: (a.float(), b.float()) for m, (a, b) in (ck.get("norm") or {}).items()})
    rows = fs.rows(split)
    feats = fs.batch(rows)
    y = fs.Y[rows].numpy().astype(np.uint8)
    ids = fs.ids[rows.numpy()]
    thresholds = np.asarray(ck["thresholds"], dtype=np.float64)
    results = []
    for kind, ratios in parsed:
        for r in ratios:
            missing = choose_missing(len(rows), kind, r, mods, seed)
            probs = _probs(head, mask_rows(feats, missing))
            if ck.get("temperature") is not None:
                probs = apply_temperature(probs, ck["temperature"])
            tuned, half = tuned_and_at_half(y, probs, thresholds, list(ck["label_names"]))
            absent = {m: int((~mask_rows(feats, missing)[f"{m}.present"]).sum()) for m in mods}
            results.append({"kind": kind, "ratio": r, "metrics": tuned, "metrics@0.5": half,
                            "rows_missing": absent,
                            "missing_ids": {m: ids[pos].tolist() for m, pos in missing.items()}})
    return {"run": str(run), "split": split, "seed": seed, "modalities": mods, "n_rows": int(len(rows)),
            "fusion": ck["fusion"], "results": results}


@torch.no_grad()
def _probs(head: torch.nn.Module, feats: dict[str, torch.Tensor], batch: int = 4096) -> np.ndarray:
    n = len(next(iter(feats.values())))
    out = [torch.sigmoid(head({k: v[i:i + batch] for k, v in feats.items()}).float()) for i in range(0, n, batch)]
    return torch.cat(out).numpy()
