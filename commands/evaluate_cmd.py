"""`evaluate`: a trained head's metrics with modalities missing from the test rows."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import user_errors


@user_errors
def evaluate(
    runs: Annotated[list[Path], typer.Argument(help="Run folder(s) written by train-head.")],
    missing: Annotated[list[str], typer.Option("--missing", help="<modality|both|all>:<ratio>[,<ratio>...], repeatable, e.g. text:0.7 or image:0,0.1,0.3,0.5,0.7,0.9 (both: r/2 of the rows lose each of two modalities, disjoint; all: r/N each).")],
    seed: Annotated[int, typer.Option(help="Seed of the rows chosen to lose a modality (saved with the results).")] = 0,
    split: Annotated[str, typer.Option(help="Split evaluated: test or dev.")] = "test",
    out: Annotated[Optional[Path], typer.Option(help="Folder for the JSON results (default: <RUN>/missing/).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also draw macro-F1 vs missing ratio for every run into this PNG.")] = None,
) -> None:
    """Metrics of each run when a share of the test rows lose a modality (thresholds unchanged)."""
    from predict.missing_eval import evaluate_missing

    if split not in ("test", "dev"):
        raise ValueError(f"--split must be test or dev, got {split!r}")
    results = []
    for run in runs:
        res = evaluate_missing(run, missing, seed=seed, split=split)
        folder = out / Path(run).name if out else Path(run) / "missing"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.,+-]", "_", "_".join(missing))[:120]
        dest = folder / f"{name}-{split}-s{seed}.json"
        dest.write_text(json.dumps(res, indent=1) + "\n")
        typer.echo(f"{Path(run).name} ({res['fusion']}, {res['n_rows']} {split} rows) -> {dest}")
        typer.echo("| missing | ratio | macro-F1 | micro-F1 | macro mAP | rows without each modality |")
        typer.echo("|---|---:|---:|---:|---:|---|")
        for r in res["results"]:
            m = r["metrics"]
            rows = ", ".join(f"{k}={v}" for k, v in r["rows_missing"].items())
            typer.echo(f"| {r['kind']} | {r['ratio']:.2f} | {m['macro_f1']:.4f} | {m['micro_f1']:.4f} | "
                       f"{m.get('macro_map', float('nan')):.4f} | {rows} |")
        results.append(res)
    if plot:
        from train_heads.report.missing_plot import plot_missing

        typer.echo(f"wrote {plot_missing(results, plot)}")
