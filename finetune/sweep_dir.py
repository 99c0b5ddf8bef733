"""`finetune --sweep-dir DIR`: fine-tuning runs recorded as a sweep folder.

Runs go to DIR/runs/<name>/ and each is entered in DIR/sweep.json (train_heads/sweep/folder.py)
with its group (the run's settings without the seed), so DIR gets the sweep's results.csv and
summary.md (mean +- std over seeds), and `compare DIR A B`, `report DIR` and `runs ls DIR/runs`
treat fine-tuned runs exactly as head runs (a head sweep and a fine-tuning sweep may share DIR).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cache.store import atomic_write
from finetune.config import FinetuneConfig
from train_heads.sweep.aggregate import write_results
from train_heads.sweep.folder import SWEEP_JSON, locked, read_sweep, utc_now


def record(sweep_dir: Path, cfg: FinetuneConfig, run: Path, dataset_fingerprint: str, command: str) -> dict[str, Path]:
    """Enter a finished run in sweep.json and rewrite the sweep's tables; returns their paths."""
    h = cfg.head
    entry = {"config": {k: v for k, v in asdict(h).items() if k not in ("name", "out")},
             "group": cfg.group_name(dataset_fingerprint),
             "feature_set": "+".join(f"{m}.{b.encoder}.{b.unfreeze}" for m, b in sorted(cfg.backbones.items())),
             "head": h.fusion, "loss": h.loss, "threshold": h.threshold, "seed": h.seed, "kind": "finetune"}
    with locked(sweep_dir):
        doc = read_sweep(sweep_dir) if (sweep_dir / SWEEP_JSON).is_file() else {"version": 1, "runs": {}}
        doc["runs"][run.name] = entry
        doc["runs"] = dict(sorted(doc["runs"].items()))
        doc["commands"] = doc.get("commands", [])[-49:] + [{"command": command, "time": utc_now()}]
        atomic_write(sweep_dir / SWEEP_JSON, json.dumps(doc, indent=1, default=str) + "\n")
    return write_results(sweep_dir)
