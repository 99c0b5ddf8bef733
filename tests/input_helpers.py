"""Helpers shared by the input hardening tests (test_harden_inputs.py, test_harden_media.py)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def text_table(tmp_path: Path, n: int = 12, **extra_cols) -> Path:
    """A small text-only table: id, plot, genres (mmimdb23 names), split."""
    splits = ["train"] * (n - 4) + ["dev", "dev", "test", "test"]
    rows = [{"id": f"m{i}", "plot": f"a story number {i} about {'love' if i % 2 else 'war'}",
             "genres": "Drama|Romance" if i % 2 else "War", "split": splits[i],
             **{k: v[i] for k, v in extra_cols.items()}} for i in range(n)]
    return write_csv(tmp_path / "t.csv", rows)


def tfidf_args(data: Path, out: Path, *flags) -> list:
    return ["extract", "--data", data, "--encoder", "tfidf", "-o", "min_df=1", "--workers", "0",
            "--out", out, *flags]


def upright_image() -> Image.Image:
    a = np.zeros((40, 60, 3), dtype=np.uint8)  # (H, W, 3), no symmetry: any rotation shows
    a[:20, :30] = 255
    a[20:, 30:, 1] = 200
    a[:, 50:, 2] = 90
    return Image.fromarray(a)
