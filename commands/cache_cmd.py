"""`cache ls | info | verify`: look at feature caches without loading them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from commands._common import user_errors

app = typer.Typer(no_args_is_help=True)


def _summary(info) -> str:  # noqa: ANN001
    from cache.read import split_counts

    a = info.attrs
    miss = {k: v for k, v in a.get("missing", {}).items() if k != "ids_first_1000"}
    tok = f" tokens={info.token_shape}" if info.token_shape else ""
    return (f"{info.path.name}  {a.get('dataset')}/{a.get('modality')}  {a.get('encoder')}  "
            f"{info.n}x{info.dim} {info.dtype}{tok}  {_splits(split_counts(info), compact=True)}  "
            f"missing={sum(miss.values())}")


def _splits(counts: dict[str, int], compact: bool = False) -> str:
    """Rows per split: 'train/dev/test=72/24/24' (compact; '/none=' added when there are
    unsplit rows) or 'train 72, dev 24, test 24, none 0'."""
    keys = ["train", "dev", "test"] + (["none"] if counts.get("none") or not compact else [])
    if compact:
        return "/".join(keys) + "=" + "/".join(str(counts.get(k, 0)) for k in keys)
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in keys)


@app.command("ls")
@user_errors
def ls(folder: Annotated[Path, typer.Argument(help="Cache folder.")] = Path("caches")) -> None:
    """One line per cache in a folder (split train/dev/test); unfinished, damaged and leftover files say so."""
    from cache.read import Entry, list_caches

    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder; give the folder that holds the caches "
                         f"(`cache info {folder}` describes one cache file)")
    if not folder.is_dir():
        raise FileNotFoundError(f"cache folder {folder} does not exist; run `extract` first")
    rows = list_caches(folder)
    if not rows:
        typer.echo(f"no caches in {folder}")
    for r in rows:
        typer.echo(f"{r.path.name}  {r.kind}: {r.reason}" if isinstance(r, Entry) else _summary(r))


@app.command("info")
@user_errors
def info(path: Annotated[Path, typer.Argument(help="Cache file.")],
         json_out: Annotated[bool, typer.Option("--json", help="All attributes as JSON.")] = False) -> None:
    """Rows, dims, split sizes, labels, encoder settings, missing counts, time, command."""
    from cache.read import open_info, split_counts

    i = open_info(path)
    if json_out:
        typer.echo(json.dumps(i.attrs, indent=2, default=str))
        return
    a = i.attrs
    miss = {k: v for k, v in a.get("missing", {}).items() if k != "ids_first_1000"}
    lines = [
        f"file        {i.path}",
        f"rows x dim  {i.n} x {i.dim} ({i.dtype})" + (f", tokens {i.token_shape}" if i.token_shape else ""),
        f"split       {_splits(split_counts(i))}",
        f"data set    {a.get('dataset')} (fingerprint {a.get('dataset_fingerprint')})",
        f"modality    {a.get('modality')}" + (f" (field {a.get('text_field')})" if a.get("text_field") else ""),
        f"encoder     {a.get('encoder')}  weights={a.get('weights')}",
        f"options     {json.dumps(a.get('options'))}",
        f"labels      {len(i.label_names)}: {', '.join(i.label_names)}",
        f"missing     {json.dumps(miss) if miss else 'none'}",
        f"time        {a.get('seconds')} s" + (" (resumed)" if a.get("resumed") else "") + f", created {a.get('created')}",
        f"command     {a.get('command')}",
    ]
    typer.echo("\n".join(lines))


@app.command("verify")
@user_errors
def verify(path: Annotated[Path, typer.Argument(help="Cache file.")]) -> None:
    """Read every dataset; check every checksum, shapes, unique ids and the missing mask."""
    from cache.read import verify as _verify

    i = _verify(path)
    typer.echo(f"ok: {i.path.name} ({i.n} x {i.dim}, checksum {i.attrs['checksum']})")
