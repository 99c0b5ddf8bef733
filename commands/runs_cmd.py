"""`runs ls | show`: look at run folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from commands._common import user_errors

app = typer.Typer(no_args_is_help=True)


def _load(run: Path) -> tuple[dict, dict]:
    if not (run / "metrics.json").is_file():
        raise FileNotFoundError(f"{run} is not a finished run folder (no metrics.json)")
    return json.loads((run / "config.json").read_text()), json.loads((run / "metrics.json").read_text())


@app.command("ls")
@user_errors
def ls(folder: Annotated[Path, typer.Argument(help="Runs folder.")] = Path("runs")) -> None:
    """One line per finished run: test macro/micro-F1, head, features."""
    if not folder.is_dir():
        raise FileNotFoundError(f"runs folder {folder} does not exist; run `train-head` first")
    runs = sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file())
    if not runs:
        typer.echo(f"no finished runs in {folder}")
    for r in runs:
        c, m = _load(r)
        typer.echo(f"{m['test']['macro_f1']:.4f}  {m['test']['micro_f1']:.4f}  {r.name}")


@app.command("show")
@user_errors
def show(run: Annotated[Path, typer.Argument(help="Run folder.")]) -> None:
    """Config, metrics and per-genre table of one run."""
    c, m = _load(run)
    cfg = c["config"]
    typer.echo(f"run        {run}\nfusion     {cfg['fusion']} {json.dumps(cfg['fusion_kw'])} "
               f"({c['head']['params']} params)\nfeatures   "
               + ", ".join(f"{k}={v['encoder']}:{v['settings_hash']}" for k, v in c["sources"].items())
               + f"\nloss       {cfg['loss']}  threshold {cfg['threshold']}  seed {cfg['seed']}"
               f"\nepochs     best {m['best_epoch']} of {m['epochs']}")
    for split in ("dev", "test", "test@0.5"):
        s = m[split]
        typer.echo(f"{split:<10} macro-F1 {s['macro_f1']:.4f}  micro-F1 {s['micro_f1']:.4f}  "
                   f"weighted-F1 {s['weighted_f1']:.4f}  samples-F1 {s['samples_f1']:.4f}  mAP {s['macro_map']:.4f}")
    typer.echo((run / "per_genre.md").read_text())
