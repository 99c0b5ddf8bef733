"""Per-epoch training state, written atomically, so a killed `finetune` resumes.

The state after each finished epoch: the trainable weights (head + trainable units with
their BatchNorm buffers; the frozen part is rebuilt from the encoder's weights), the best
epoch's copy of them, optimiser, warmup / epoch schedulers, AMP grad scaler, the data-order
generator and torch's RNG, history and early-stopping counters. It is written to a temporary
name and renamed (`os.replace`), so a kill mid-write leaves the previous epoch's state. A
rerun of the same command (same settings key) loads it and continues with the next epoch;
on CPU the run then ends with the same metrics as an uninterrupted one (tested).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def checkpoint_path(out: str | Path, run_name: str) -> Path:
    """Where a run in progress keeps its state: <out>/.finetune/<run name>.pt (removed at the end)."""
    return Path(out) / ".finetune" / f"{run_name}.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, key: str) -> dict[str, Any] | None:
    """The saved state of a run with this settings key, or None (no file, other settings, or a
    damaged file: said, and the run starts over)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint only costs the epochs it held
        print(f"checkpoint {path} is unreadable ({type(e).__name__}); starting over", flush=True)
        return None
    if state.get("key") != key:
        print(f"checkpoint {path} is from other settings; starting over", flush=True)
        return None
    return state


def rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
