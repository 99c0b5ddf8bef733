"""Macro-F1 against the share of test rows missing a modality, one line per run, one panel
per missing kind (the missing-modality curves of Ma et al. 2022 / Lee et al. 2023)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_missing(evaluations: list[dict[str, Any]], path: str | Path, metric: str = "macro_f1",
                 labels: list[str] | None = None) -> Path:
    """evaluations: `evaluate_missing` outputs (one per run); writes one PNG."""
    kinds = sorted({r["kind"] for e in evaluations for r in e["results"]})
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds):
        for k, e in enumerate(evaluations):
            pts = sorted((r["ratio"], r["metrics"][metric]) for r in e["results"] if r["kind"] == kind)
            if pts:
                label = labels[k] if labels else Path(e["run"]).name[:40]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
        ax.set_title(f"missing: {kind}", fontsize=9)
        ax.set_xlabel("share of test rows missing it")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric}")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
