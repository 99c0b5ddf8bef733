"""Head training speed.

A. Real subset (EfficientNet-Lite0 + MiniLM caches): wall time of `train-head --fusion gmu`
   to early-stop (features loaded, training, threshold tuning, run folder written) against
   sklearn one-vs-rest LogisticRegression on the same concatenated features, same run.
B. Epochs/s of every registered head on an MM-IMDb-sized random feature set
   (25,959 x (1,280 + 384), 23 genres, official split sizes), features in memory.
C. Real subset, per modality (EfficientNet-Lite0, MiniLM, and TF-IDF when its cache is in
   --caches): the `linear` head (default L-BFGS and -o solver=adamw) against sklearn
   one-vs-rest LogisticRegression on the same features (dense ones z-scored with train
   mean/std, sparse TF-IDF raw, as train-head's default), thresholds tuned per genre on dev;
   test macro/micro-F1 (mean +- std over seeds 0,1,2 for the heads; sklearn is deterministic)
   and seconds per fit.

    python bench/head_speed.py [--data DIR] [--caches caches] [--epochs 3] [--skip-real] [--skip-random]
                               [--lr-c 1.0,0.05]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import REPO, subset_dir

import numpy as np
import torch

from cache.features import FeatureSet, load_features, resolve_cache
from train_heads.config import HeadConfig
from train_heads.fusion import FUSIONS, list_fusions
from train_heads.thresholds import apply_thresholds, tune_thresholds
from train_heads.metrics import compute_metrics


def real_subset(caches: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler

    from train_heads.runs import train_and_write

    feats = {"image": str(resolve_cache("efficientnet-lite0", caches)), "text": str(resolve_cache("minilm", caches))}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):  # cold (first in the process: lazy imports, kernel set-up), then warm
            t0 = time.perf_counter()
            _, m = train_and_write(HeadConfig(features=feats, fusion="gmu", out=tmp, name="gmu"), progress=False)
            times.append(time.perf_counter() - t0)
    t_cold, t_gmu = times
    fs = load_features(feats)
    X = torch.cat([fs.X["image"], fs.X["text"]], 1).numpy()
    Y = fs.Y.numpy().astype(np.uint8)
    tr, dv, te = (fs.split == "train"), (fs.split == "dev"), (fs.split == "test")
    keep = Y[tr].sum(0) > 0  # OvR LR cannot fit a genre with no train positive
    t0 = time.perf_counter()
    sc = StandardScaler().fit(X[tr])
    clf = OneVsRestClassifier(LogisticRegression(C=0.05, max_iter=1000)).fit(sc.transform(X[tr]), Y[tr][:, keep])
    t_lr = time.perf_counter() - t0
    P = {s: np.zeros((int(m_.sum()), Y.shape[1])) for s, m_ in (("dev", dv), ("test", te))}
    P["dev"][:, keep], P["test"][:, keep] = clf.predict_proba(sc.transform(X[dv])), clf.predict_proba(sc.transform(X[te]))
    thr = tune_thresholds("per_class", P["dev"], Y[dv])
    lr = compute_metrics(Y[te], P["test"], apply_thresholds(P["test"], thr), fs.label_names)
    print(f"[A] real subset, {int(tr.sum())} train / {int(dv.sum())} dev / {int(te.sum())} test, "
          f"features {fs.dims}")
    print(f"    train-head gmu, cold (first run in the process): {t_cold:6.2f} s")
    print(f"    train-head gmu (early stop at epoch {m['best_epoch']}/{m['epochs']}): {t_gmu:6.2f} s  "
          f"test macro-F1 {m['test']['macro_f1']:.4f} micro-F1 {m['test']['micro_f1']:.4f}")
    print(f"    sklearn OvR LogisticRegression:            {t_lr:6.2f} s  "
          f"test macro-F1 {lr['macro_f1']:.4f} micro-F1 {lr['micro_f1']:.4f}")
    print(f"    LR time / gmu time = {t_lr / t_gmu:.2f}x  (target: gmu < 5 s and faster than LR)")


def _sklearn_probe(fs: FeatureSet, m: str, C: float) -> tuple[dict, float]:
    """OvR LogisticRegression(C) on modality m of an already z-scored FeatureSet; thresholds
    per genre tuned on dev. Returns (test metrics, seconds to fit)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = fs.X[m].numpy(), fs.Y.numpy().astype(np.uint8)
    tr, dv, te = (fs.split == "train"), (fs.split == "dev"), (fs.split == "test")
    keep = Y[tr].sum(0) > 0  # OvR LR cannot fit a genre with no train positive: probability 0
    t0 = time.perf_counter()
    clf = OneVsRestClassifier(LogisticRegression(C=C, max_iter=1000)).fit(X[tr], Y[tr][:, keep])
    seconds = time.perf_counter() - t0
    P = {}
    for s, rows in (("dev", dv), ("test", te)):
        P[s] = np.zeros((int(rows.sum()), Y.shape[1]))
        P[s][:, keep] = clf.predict_proba(X[rows])
    thr = tune_thresholds("per_class", P["dev"], Y[dv])
    return compute_metrics(Y[te], P["test"], apply_thresholds(P["test"], thr), fs.label_names), seconds


def linear_vs_logreg(fs: FeatureSet, seeds: tuple[int, ...] = (0, 1, 2), cs: tuple[float, ...] = (1.0, 0.05)) -> None:
    """Part C on a loaded FeatureSet (any caches: the real subset's in main())."""
    from train_heads.train import evaluate, standardized, train

    z = fs.to("cpu")  # a copy, standardized as train-head does by default: dense modalities
    z.standardize(z.rows("train"), only=standardized(HeadConfig(features={}), z, z.rows("train")))  # z-scored, sparse raw
    print(f"[C] linear head vs sklearn LogisticRegression, per_class thresholds tuned on dev, seeds {list(seeds)}")
    for m in fs.modalities:
        print(f"    {m} ({fs.sources.get(m, {}).get('encoder', '?')}, {fs.dims[m]}-d):")
        for label, kw in (("linear (default: lbfgs)", {}), ("linear -o solver=adamw", {"solver": "adamw"})):
            f1s, micro, secs, epochs = [], [], [], []
            for seed in seeds:
                cfg = HeadConfig(features={}, fusion="linear", fusion_kw={"modality": m, **kw}, seed=seed)
                t0 = time.perf_counter()
                res = train(cfg, fs=fs, progress=False)
                secs.append(time.perf_counter() - t0)
                met = evaluate(res)
                f1s.append(met["test"]["macro_f1"])
                micro.append(met["test"]["micro_f1"])
                epochs.append(met["epochs"])
            print(f"      {label:<28} macro-F1 {np.mean(f1s):.4f} +- {np.std(f1s):.4f}  micro-F1 {np.mean(micro):.4f}"
                  f"  {np.mean(secs):6.2f} s/fit  epochs {epochs}  ({', '.join(f'{v:.4f}' for v in f1s)})")
        for C in cs:
            met, sec = _sklearn_probe(z, m, C)
            print(f"      {'sklearn OvR LR C=' + str(C):<28} macro-F1 {met['macro_f1']:.4f}            "
                  f"micro-F1 {met['micro_f1']:.4f}  {sec:6.2f} s/fit")


def random_featureset(seed: int = 0) -> FeatureSet:
    """MM-IMDb-sized: 25,959 rows, image 1280-d, text 384-d, 23 genres, official split sizes."""
    g = torch.Generator().manual_seed(seed)
    n, c = 25_959, 23
    split = np.array(["train"] * 15_552 + ["dev"] * 2_608 + ["test"] * 7_799)
    rate = torch.linspace(0.02, 0.45, c)  # MM-IMDb-like: Drama ~half, rare genres ~1-2 %
    Y = (torch.rand(n, c, generator=g) < rate).float()
    X = {"image": torch.randn(n, 1280, generator=g), "text": torch.randn(n, 384, generator=g)}
    present = {m: torch.ones(n, dtype=torch.bool) for m in X}
    return FeatureSet(np.array([str(i) for i in range(n)]), split, [f"g{i}" for i in range(c)], Y, X, present)


def epochs_per_second(epochs: int) -> None:
    from train_heads.train import train

    fs = random_featureset()
    print(f"[B] epochs/s on a random MM-IMDb-sized feature set (25,959 x (1,280 + 384)), "
          f"batch 256, {torch.get_num_threads()} threads, each epoch includes the dev pass")
    for name in list_fusions():
        kw = {"modality": "image"} if FUSIONS[name].min_modalities == 1 else {}
        cfg = HeadConfig(features={}, fusion=name, fusion_kw=kw, max_epochs=epochs, patience=epochs + 1)
        t0 = time.perf_counter()
        res = train(cfg, fs=fs, progress=False)
        dt = time.perf_counter() - t0
        print(f"    {name:<16} {len(res.history) / dt:6.2f} epochs/s  ({dt / len(res.history):.2f} s/epoch)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--caches", default=str(REPO / "caches"),
                    help="folder with the subset's efficientnet-lite0 and minilm caches "
                         "(make them with `cli.py extract --preset poster-subset ...`)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--skip-real", action="store_true", help="skip parts A and C (real subset)")
    ap.add_argument("--skip-random", action="store_true", help="skip part B (random MM-IMDb-sized features)")
    ap.add_argument("--lr-c", default="1.0,0.05", help="sklearn LogisticRegression C values for part C")
    a = ap.parse_args()
    if not a.skip_real:
        subset_dir(a.data)
        real_subset(Path(a.caches))
        caches = Path(a.caches)
        feats = {"image": resolve_cache("efficientnet-lite0", caches), "text": resolve_cache("minilm", caches)}
        try:  # optional: a sparse text encoder, kept raw by train-head's default standardization
            feats["tfidf"] = resolve_cache("tfidf", caches)
        except FileNotFoundError:
            print("    (no tfidf cache in --caches: part C without it)")
        fs = load_features(feats)
        linear_vs_logreg(fs, cs=tuple(float(c) for c in a.lr_c.split(",")))
    if not a.skip_random:
        epochs_per_second(a.epochs)


if __name__ == "__main__":
    main()
