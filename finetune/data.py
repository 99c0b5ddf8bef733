"""Where each backbone's input comes from, batch by batch.

Three modes per backbone (finetune/freeze.py BlockPlan.mode), chosen by `plan_inputs`:
- `features`: nothing trains (`--unfreeze none`) and nothing augments the input: the
  backbone's pooled features come from a normal `extract` cache (float32), read once.
- `prefix`: the first trainable block is k > 0 and nothing augments the input, so the
  activations entering block k are the same every epoch (the cached-prefix trick): they are
  extracted once (`extract --upto last:N`, a normal hashed cache, float32) and training
  runs only blocks k.. + head on them.
- `raw`: posters are decoded and transformed (augmented in training), plots tokenized (token
  dropout in training) by DataLoader workers every epoch; the frozen prefix runs under
  no_grad in the main process.
Absent items (no poster, unreadable poster, empty text) are masked, never zero images:
`present` is False and the head gets the zero row plus the mask, as with caches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from cache.features import load_features
from extract.encoders import Encoder
from extract.images import OK, load_image
from extract.procs import DieWithParent
from extract.records import Record, is_blank
from extract.run import EMPTY_TEXT, NO_IMAGE

Raw = dict[str, tuple[torch.Tensor, Any]]  # backbone -> ((B,) present, encoder batch of present rows or None)


@dataclass
class Stored:
    """A backbone's input read once from a cache, rows in data set order."""

    present: torch.Tensor  # (N,) bool
    features: torch.Tensor | None = None  # (N, D) float32 (mode features)
    tokens: torch.Tensor | None = None  # (N, T, Dt) float32 (mode prefix)
    token_mask: torch.Tensor | None = None  # (N, T) bool
    path: str = ""  # the cache file


def load_stored(path: str, ids: list[str], prefix: bool) -> Stored:
    """Read a cache (checked like any cache) and order its rows as `ids`."""
    fs = load_features({"x": path}, tokens=prefix)
    pos = {str(i): k for k, i in enumerate(fs.ids)}
    order = torch.tensor([pos[i] for i in ids])
    if prefix:
        if "x" not in fs.tokens:
            raise ValueError(f"{path} holds no prefix activations (tokens); re-extract it with --upto")
        return Stored(fs.present["x"][order], tokens=fs.tokens["x"][order], token_mask=fs.token_mask["x"][order],
                      path=str(path))
    return Stored(fs.present["x"][order], features=fs.X["x"][order], path=str(path))


class RawRows(torch.utils.data.Dataset):
    """Row i -> (i, {backbone: (status, preprocessed input or None)}) for raw-mode backbones.

    `preps[m]` is (kind, text field, callable): the poster transform (eval or augmented) for
    images, identity for texts. Picklable: DataLoader workers get a copy."""

    def __init__(self, records: list[Record], preps: dict[str, tuple[str, str, Any]]) -> None:
        self.records, self.preps = records, preps

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, dict[str, tuple[int, Any]]]:
        r, out = self.records[i], {}
        for m, (kind, field, prep) in self.preps.items():
            if kind == "text":
                text = r.texts.get(field, "")
                out[m] = (EMPTY_TEXT, None) if is_blank(text) else (OK, prep(text))
            elif r.image is None:
                out[m] = (NO_IMAGE, None)
            else:
                status, im, _ = load_image(r.image)
                out[m] = (status, prep(im) if status == OK else None)
        return i, out


class Collate:
    """A list of rows -> (row indices (B,), statuses {m: (B,)}, {m: (present (B,), batch)})."""

    def __init__(self, encoders: dict[str, Encoder]) -> None:
        self.encoders = encoders

    def __call__(self, items: list[tuple[int, dict[str, tuple[int, Any]]]]) -> tuple[torch.Tensor, dict, Raw]:
        idx = torch.tensor([i for i, _ in items])
        raw: Raw = {}
        status = {}
        for m, enc in self.encoders.items():
            st = np.array([d[m][0] for _, d in items], dtype=np.int8)
            xs = [d[m][1] for _, d in items if d[m][0] == OK]
            raw[m] = (torch.from_numpy(st == OK), enc.collate(xs) if xs else None)
            status[m] = st
        return idx, status, raw


def index_batches(rows: torch.Tensor, batch_size: int, gen: torch.Generator | None) -> list[list[int]]:
    """Rows in a seeded random order (gen) or as given, cut into batches."""
    order = rows[torch.randperm(len(rows), generator=gen)] if gen is not None else rows
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def iterate(records: list[Record], preps: dict[str, tuple[str, str, Any]], encoders: dict[str, Encoder],
            batches: list[list[int]], workers: int, seed: int
            ) -> Iterator[tuple[torch.Tensor, dict[str, np.ndarray], Raw]]:
    """Batches of (rows, statuses, raw inputs); plain index tensors when no backbone reads raw
    input. `seed` seeds the workers' random augmentation (a resumed epoch redraws the same)."""
    if not preps:
        for b in batches:
            yield torch.tensor(b), {}, {}
        return
    workers = workers if len(batches) > 1 else 0
    loader = DataLoader(RawRows(records, preps), batch_sampler=batches, collate_fn=Collate(encoders),
                        num_workers=workers, generator=torch.Generator().manual_seed(seed),
                        worker_init_fn=DieWithParent(os.getpid()) if workers > 0 else None,
                        prefetch_factor=4 if workers > 0 else None, persistent_workers=False)
    yield from loader  # workers: seeded from `seed`; none: augmentation draws on torch's RNG
