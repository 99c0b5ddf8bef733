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
    """One line per finished run: test macro-F1 and micro-F1 (tuned thresholds), head, features
    (modality=encoder) and the run folder name."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a runs folder; give the folder that holds run folders")
    if not folder.is_dir():
        raise FileNotFoundError(f"runs folder {folder} does not exist; run `train-head` first")
    runs = sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file())
    if not runs:
        typer.echo(f"no finished runs in {folder}")
        return
    rows = [_ls_row(r) for r in runs]
    header = ("macro-F1", "micro-F1", "head", "features", "run")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header) - 1)]
    for x in [header, *rows]:
        typer.echo("  ".join([*(c.rjust(w) if i < 2 else c.ljust(w) for i, (c, w) in enumerate(zip(x, widths))),
                              x[-1]]))


def _ls_row(run: Path) -> tuple[str, str, str, str, str]:
    """macro-F1, micro-F1, head (fusion and its -o options), features (modality=encoder), name."""
    c, m = _load(run)
    cfg = c.get("config", {})
    opts = ",".join(f"{k}={v}" for k, v in sorted(cfg.get("fusion_kw", {}).items()))
    head = cfg.get("fusion", "?") + (f"({opts})" if opts else "")
    feats = ",".join(f"{k}={v.get('encoder')}" for k, v in sorted(c.get("sources", {}).items()))
    return _num(m["test"].get("macro_f1")), _num(m["test"].get("micro_f1")), head, feats, run.name


def _num(v: float | None) -> str:
    """A metric to 4 places; None (undefined: no genre with a positive) as n/a."""
    return "n/a" if v is None else f"{v:.4f}"


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
        typer.echo(f"{split:<10} macro-F1 {_num(s['macro_f1'])}  micro-F1 {_num(s['micro_f1'])}  "
                   f"weighted-F1 {_num(s['weighted_f1'])}  samples-F1 {_num(s['samples_f1'])}  "
                   f"mAP {_num(s['macro_map'])}")
    typer.echo((run / "per_genre.md").read_text())
