"""`demo`: the whole pipeline on the embedded synthetic data set, offline, in minutes."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands._common import command_line, user_errors

# Heads compared by the demo: unimodal baselines, two fusion heads of poster and plot, and the
# same fusions with the metadata (director, cast, keywords as TF-IDF multi-hot) as a third modality.
DEMO_HEADS = (("image-only", "mlp", {"modality": "image"}, ("image", "text")),
              ("text-only", "mlp", {"modality": "text"}, ("image", "text")),
              ("meta-only", "mlp", {"modality": "meta"}, ("meta",)),
              ("concat", "concat", {}, ("image", "text")), ("gmu", "gmu", {}, ("image", "text")),
              ("concat image+text+meta", "concat", {}, ("image", "text", "meta")),
              ("gmu image+text+meta", "gmu", {}, ("image", "text", "meta")))


@user_errors
def demo(
    root: Annotated[Path, typer.Option(help="Where the demo data, caches and runs go.")] = Path("demo_data"),
    n: Annotated[int, typer.Option(help="Movies in the generated data set.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the data generator and the heads.")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers for extraction.")] = 2,
) -> None:
    """Generate a small MM-IMDb-layout data set, extract EfficientNet-Lite0 + MiniLM, train heads."""
    from cache.read import open_info
    from extract.datasets import DatasetConfig
    from extract.demo.data import make_demo_dataset
    from extract.run import ExtractConfig, run_extract
    from train_heads.config import HeadConfig
    from train_heads.runs import train_and_write

    data = make_demo_dataset(root / "data", n=n, seed=seed)
    typer.echo(f"data set: {data} ({n} movies, MM-IMDb raw layout)")
    caches = {}
    for modality, encoder in (("image", "efficientnet-lite0"), ("text", "minilm"), ("meta", "multihot")):
        res = run_extract(ExtractConfig(dataset=DatasetConfig(path=data, format="mmimdb", labels="data"),
                                        encoder=encoder,
                                        out=root / "caches", workers=workers, command=command_line()))
        caches[modality] = str(res.path)
        info = open_info(res.path)
        miss = {k: v for k, v in info.attrs.get("missing", {}).items() if k != "ids_first_1000"}
        typer.echo(f"{modality:<5} {encoder}: {res.path.name} {info.n}x{info.dim}"
                   f"{' (cached)' if res.skipped else f' in {res.seconds:.1f}s'}  missing: {miss or 'none'}")
    rows = []
    for label, fusion, kw, modalities in DEMO_HEADS:
        cfg = HeadConfig(features={m: caches[m] for m in modalities}, fusion=fusion, fusion_kw=kw, seed=seed,
                         name="demo-" + label.replace(" ", "-").replace("+", "-"), out=str(root / "runs"))
        path, m = train_and_write(cfg, progress=False)
        rows.append((label, m["test"]["macro_f1"], m["test"]["micro_f1"], path))
    typer.echo("\n| head | test macro-F1 | test micro-F1 | run folder |\n|---|---|---|---|")
    for label, ma, mi, path in rows:
        typer.echo(f"| {label} | {ma:.4f} | {mi:.4f} | {path} |")
