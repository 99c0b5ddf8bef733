"""Figure data for `report`, read from the run folders (per_genre.csv, predictions_*.csv,
explain_test.npz, history.json, metrics.json, config.json). Each function returns the plain
dict that is saved as `<figure>.json` and drawn by `train_heads.report.plots`."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from train_heads.runs import load_predictions
from train_heads.thresholds import threshold_curve

GATE_KINDS = {"gmu": "gate_mean", "moe": "gates", "idkg": "attention"}  # fusion -> explain key with per-row modality gates


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def per_genre_data(runs: list[Path]) -> dict[str, Any]:
    """Genres (by support, from the first run) and each run's test F1 from per_genre.csv."""
    tables = {r.name: {row["name"]: row for row in _read_csv(r / "per_genre.csv")} for r in runs}
    first = tables[runs[0].name]
    genres = sorted(first, key=lambda g: (-int(first[g]["support"]), g))
    return {"genres": genres, "support": [int(first[g]["support"]) for g in genres],
            "runs": {name: [float(t[g]["f1"]) if g in t else 0.0 for g in genres] for name, t in tables.items()}}


def per_genre_table(d: dict[str, Any]) -> str:
    names = list(d["runs"])
    head = "| genre | support | " + " | ".join(f"run {i + 1}" for i in range(len(names))) + " |"
    lines = [", ".join(f"run {i + 1} = `{n}`" for i, n in enumerate(names)), "", head,
             "|---|---:|" + "---:|" * len(names)]
    for k, g in enumerate(d["genres"]):
        cells = [f"{d['runs'][n][k]:.3f}" if d["support"][k] else "n/a" for n in names]
        lines.append(f"| {g} | {d['support'][k]} | " + " | ".join(cells) + " |")
    if 0 in d["support"]:
        lines += ["", "n/a: no positive in test; excluded from the macro averages."]
    return "\n".join(lines)


def _config(run: Path) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())


def fusion_of(run: Path) -> str:
    return _config(run)["config"]["fusion"]


def _modalities(run: Path) -> list[str]:
    return sorted(_config(run)["head"]["dims"])


def _explain(run: Path) -> dict[str, np.ndarray]:
    p = run / "explain_test.npz"
    if not p.is_file():
        return {}
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def with_explain(chosen: list[Path], ranked: list[Path]) -> list[Path]:
    """The chosen runs with internals, plus the best run of every other head that has them."""
    out = [r for r in chosen if (r / "explain_test.npz").is_file()]
    heads = {fusion_of(r) for r in out}
    for r in ranked:
        if (r / "explain_test.npz").is_file() and fusion_of(r) not in heads:
            heads.add(fusion_of(r))
            out.append(r)
    return out


def gate_preference(run: Path) -> dict[str, Any] | None:
    """Per true genre: share of test movies whose mean gate favours each modality."""
    fusion, ex = fusion_of(run), _explain(run)
    g = ex.get(GATE_KINDS.get(fusion, ""))
    if g is None or g.ndim not in (1, 2) or (fusion == "moe" and g.ndim != 2):
        return None  # untied MoE (B, M, C) has a gate per class, not per movie
    mods = _modalities(run)
    pred = load_predictions(run)  # sorted by id
    order = np.argsort(ex["ids"].astype(str), kind="stable")
    if not np.array_equal(ex["ids"].astype(str)[order], pred["ids"].astype(str)):
        raise ValueError(f"{run}: explain_test.npz and predictions_test.csv hold different movies")
    g = g[order]
    if g.ndim == 1:  # tied GMU gate: weight of the first modality, (B,)
        fav = np.where(g > 0.5, 0, 1)
    else:  # (B, M): one gate per modality
        fav = g.argmax(1)
    share, n = [], []
    for c in range(len(pred["label_names"])):
        rows = pred["y"][:, c] > 0
        n.append(int(rows.sum()))
        share.append([float((fav[rows] == j).mean()) if rows.any() else 0.0 for j in range(len(mods))])
    return {"run": run.name, "kind": f"{fusion} gate", "modalities": mods, "genres": pred["label_names"],
            "share": share, "n": n, "overall": [float((fav == j).mean()) for j in range(len(mods))]}


def pref_table(d: dict[str, Any]) -> str:
    lines = ["| genre | n | " + " | ".join(f"favours {m}" for m in d["modalities"]) + " |",
             "|---|---:|" + "---:|" * len(d["modalities"])]
    lines += [f"| {g} | {n} | " + " | ".join(f"{v:.2f}" for v in s) + " |"
              for g, n, s in zip(d["genres"], d["n"], d["share"])]
    return "\n".join(lines)


def modality_weight_data(runs: list[Path]) -> dict[str, Any]:
    """Mean modality weights: late alpha/weights, tied or untied MoE gates."""
    items = []
    for r in runs:
        ex, mods, fusion = _explain(r), _modalities(r), fusion_of(r)
        for key in ("alpha", "weights", "gates"):
            a = ex.get(key)
            if a is None or fusion == "gmu" or a.ndim < 2 or a.shape[1] != len(mods):
                continue
            mean = a.mean(axis=tuple(i for i in range(a.ndim) if i != 1))  # (M,)
            if items and items[-1]["run"] == r.name and np.allclose(items[-1]["mean"], mean):
                continue  # late "weights" equal "alpha" when no modality is missing
            items.append({"run": r.name, "label": f"{fusion} {key}", "modalities": mods,
                          "mean": [float(v) for v in mean]})
    return {"items": items}


def attention_data(runs: list[Path]) -> dict[str, Any]:
    """Mean (M, M) modality self-attention maps, and peakedness of every attention map."""
    items, summaries = [], []
    for r in runs:
        ex, mods = _explain(r), _modalities(r)
        for key, a in ex.items():
            if not key.startswith("attn") or a.ndim != 3:
                continue
            p = np.clip(a, 1e-12, 1.0)
            summaries.append({"run": r.name, "key": key, "shape": list(a.shape[1:]),
                              "max": float(a.max(-1).mean()), "entropy": float(-(p * np.log(p)).sum(-1).mean()) + 0.0})  # no "-0.000"
            if key == "attn" and a.shape[1:] == (len(mods), len(mods)):
                items.append({"run": r.name, "label": f"{fusion_of(r)}: {r.name}", "modalities": mods,
                              "mean": a.mean(0).tolist()})
    return {"items": items, "summaries": summaries}


def curve_data(runs: list[Path]) -> dict[str, Any]:
    out = {}
    for r in runs:
        h = json.loads((r / "history.json").read_text())
        best = json.loads((r / "metrics.json").read_text()).get("best_epoch")
        out[r.name] = {"epoch": [e["epoch"] for e in h], "train_loss": [e["train_loss"] for e in h],
                       "dev_macro_f1": [e["dev_macro_f1"] for e in h], "best_epoch": best}
    return {"runs": out}


def cooccurrence_data(run: Path) -> dict[str, Any]:
    """Genre co-occurrence counts Y^T Y (C, C) over the data set the run was trained on."""
    cfg = _config(run)
    names = cfg["label_names"]
    for src in cfg.get("sources", {}).values():
        path = Path(src.get("path", ""))
        if path.is_file():
            import h5py

            from cache.read import open_info

            file_names = open_info(path).label_names
            with h5py.File(path, "r") as f:
                Y = f["labels"][...].astype(np.int64)
            Y = Y[:, [file_names.index(n) for n in names]]
            return {"genres": names, "counts": (Y.T @ Y).tolist(), "n_movies": int(len(Y)),
                    "source": f"cache labels: {path}"}
    Y = np.concatenate([load_predictions(run, s)["y"] for s in ("dev", "test")]).astype(np.int64)
    return {"genres": names, "counts": (Y.T @ Y).tolist(), "n_movies": int(len(Y)),
            "source": "y columns of predictions_dev.csv + predictions_test.csv"}


def threshold_data(runs: list[Path]) -> dict[str, Any]:
    out = {}
    for r in runs:
        d, t = load_predictions(r, "dev"), load_predictions(r, "test")
        cd, ct = threshold_curve(d["probs"], d["y"]), threshold_curve(t["probs"], t["y"])
        m = json.loads((r / "metrics.json").read_text())
        out[r.name] = {"grid": ct["grid"], "dev_macro_f1": cd["macro_f1"], "test_macro_f1": ct["macro_f1"],
                       "tuned_test_macro_f1": m["test"].get("macro_f1"),
                       "test_macro_f1_at_0.5": m["test@0.5"].get("macro_f1")}
    return {"runs": out}
