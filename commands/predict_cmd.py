"""`predict`: genres for a poster and/or a plot, or a CSV of them, with a trained run."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import user_errors


@user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="Run folder written by train-head.")],
    image: Annotated[Optional[Path], typer.Option(help="A poster image.")] = None,
    text: Annotated[Optional[str], typer.Option(help="A plot text.")] = None,
    csv_in: Annotated[Optional[Path], typer.Option("--csv", help="CSV with columns id, image, text (either may be empty).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write probabilities to this CSV.")] = None,
    top: Annotated[int, typer.Option(help="Genres shown per item.")] = 5,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Print predicted genres (tuned thresholds) with probabilities."""
    from extract.predict import Item, Predictor

    if csv_in is None and image is None and text is None:
        raise ValueError("give --image and/or --text, or --csv")
    items: list[Item] = []
    if csv_in is not None:
        if not csv_in.is_file():
            raise FileNotFoundError(f"--csv {csv_in} does not exist")
        with open(csv_in, newline="") as f:
            for k, row in enumerate(csv.DictReader(f)):
                img = (row.get("image") or "").strip()
                items.append(Item(row.get("id") or str(k), (csv_in.parent / img) if img else None,
                                  row.get("text") or None))
    else:
        items.append(Item("input", image, text))
    pred = Predictor.from_run(run, device=device)
    probs = pred.predict(items)
    for it, p in zip(items, probs):
        chosen = [n for n, pi, t in zip(pred.label_names, p, pred.thresholds) if pi >= t]
        order = p.argsort()[::-1][:top]
        typer.echo(f"{it.id}: {', '.join(chosen) or '(none above threshold)'}   |  "
                   + "  ".join(f"{pred.label_names[j]} {p[j]:.3f}" for j in order))
    if out is not None:
        with open(out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", *pred.label_names])
            for it, p in zip(items, probs):
                w.writerow([it.id, *[f"{x:.6f}" for x in p]])
        typer.echo(f"wrote {out}")
