"""Knowledge-graph speed on the real subset: building the metadata graph and training RotatE
(`kg` encoder, extract/encoders/kg.py) at the settings docs/results/modalities uses, against
the paper's settings (paper 002 Sec. 4.1: 500 epochs, batch 100), whose per-epoch cost is
measured in the same run and multiplied by 500 (running it whole would take hours here).
Target: < 5 minutes on 2 cores for the defaults.

With --f1-epochs 10,25,50 it also trains one model per epoch count and reports the test
macro-F1 of a one-vs-rest logistic regression (sklearn, C=1, per-genre thresholds tuned on dev) on the movie vectors, official split: what fewer epochs cost.

    python bench/kg_speed.py [--data DIR] [--epochs 50] [--f1-epochs 10,25,50]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import subset_dir


def _dataset(data):
    from extract.datasets import DatasetConfig, load_dataset

    return load_dataset(DatasetConfig(path=data, preset="poster-subset"))


def _fit(ds, **opts):
    from extract.encoders import create_encoder
    from extract.run import meta_row

    enc = create_encoder("kg", options=opts)
    rows = [meta_row(r, enc.meta_fields) for r in ds.records]
    labels = [list(r.labels) if r.split == "train" else None for r in ds.records]
    t0 = time.perf_counter()
    enc.fit_meta(rows, labels)
    return enc, rows, time.perf_counter() - t0


def _macro_f1(ds, enc, rows) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from train_heads.metrics import compute_metrics
    from train_heads.thresholds import apply_thresholds, tune_thresholds

    x = enc.encode(rows).features.numpy()
    y = np.array(ds.label_matrix())
    split = np.array([r.split for r in ds.records])
    keep = ~(x == 0).all(1)
    tr, dv, te = [(split == s) & keep for s in ("train", "dev", "test")]
    cols = y[tr].sum(0) > 0
    clf = OneVsRestClassifier(LogisticRegression(C=1.0, max_iter=1000)).fit(x[tr], y[tr][:, cols])
    p = {s: np.zeros((m.sum(), y.shape[1])) for s, m in (("dev", dv), ("test", te))}
    for s, m in (("dev", dv), ("test", te)):
        p[s][:, cols] = clf.predict_proba(x[m])
    thr = tune_thresholds("per_class", p["dev"], y[dv])
    return compute_metrics(y[te], p["test"], apply_thresholds(p["test"], thr), ds.label_names)["macro_f1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=None, help="default: the kg encoder's own default")
    ap.add_argument("--f1-epochs", default="", help="comma list of epoch counts to score, e.g. 10,25,50")
    a = ap.parse_args()
    torch.set_num_threads(2)
    ds = _dataset(subset_dir(a.data))
    from extract.encoders.kg import KGEncoder

    epochs = a.epochs or KGEncoder.defaults["epochs"]
    enc, rows, ours = _fit(ds, epochs=epochs)
    print(f"ours: graph + RotatE dim 200, {epochs} epochs, batch {enc.options['batch_size']}, "
          f"{enc.options['num_negs']} negative(s): {ours:.1f} s ({ours / 60:.2f} min; target < 5 min)")
    _, _, one = _fit(ds, epochs=1, batch_size=100, num_negs=1)
    _, _, two = _fit(ds, epochs=2, batch_size=100, num_negs=1)
    per_epoch, overhead = two - one, max(2 * one - two, 0.0)  # one epoch at batch 100; graph build etc.
    paper = overhead + 500 * per_epoch
    print(f"paper settings (500 epochs, batch 100): {per_epoch:.1f} s per epoch measured -> "
          f"{paper / 60:.1f} min extrapolated; ratio to ours {paper / ours:.1f}x")
    for e in [int(x) for x in a.f1_epochs.split(",") if x]:
        enc, rows, sec = _fit(ds, epochs=e)
        print(f"epochs {e}: {sec:.1f} s, test macro-F1 (logistic regression on the movie vectors) "
              f"{_macro_f1(ds, enc, rows):.4f}")


if __name__ == "__main__":
    main()
