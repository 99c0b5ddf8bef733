"""Test macro-F1 against training time per run for every configuration of a sweep folder
(mean +- std over seeds): what fine-tuning buys and what it costs, in one picture.

    python docs/results/finetune/tradeoff.py sweeps/finetune docs/results/finetune/tradeoff.png
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(sweep: Path, out: Path) -> None:
    doc = json.loads((sweep / "results.json").read_text())
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = []
    for g in doc["summary"]:
        f1, sec = g.get("test_macro_f1") or {}, g.get("train_seconds") or {}
        if f1.get("mean") is None or sec.get("mean") is None:
            continue
        label = g["group"].replace("ft-", "").replace("efficientnet-lite0", "effnet").rsplit("-", 1)[0]
        ax.errorbar(max(sec["mean"], 0.1), f1["mean"], yerr=f1.get("std") or 0, fmt="o", capsize=3)
        ax.annotate(label[:60], (max(sec["mean"], 0.1), f1["mean"]), fontsize=6, xytext=(4, 2),
                    textcoords="offset points")
        rows.append({"configuration": g["group"], "train_seconds": sec, "test_macro_f1": f1, "n": g["n_ok"]})
    ax.set_xscale("log")
    ax.set_xlabel("training seconds per run (2 CPU cores, log scale)")
    ax.set_ylabel("test macro-F1 (mean ± std over seeds)")
    ax.set_title(f"{sweep.name}: accuracy vs cost per run", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
