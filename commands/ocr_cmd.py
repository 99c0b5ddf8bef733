"""`ocr`: read the text printed on every poster once (paper 004's second modality)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import (DataPath, DatasetFile, DropLabel, Format, IdCol, IdNorm, ImageCol, ImageDir,
                              ImagePattern, LabelCol, LabelCols, Labels, LabelSep, Limit, MetaCols, MetaFile,
                              MetaTextCols, Plot, Preset, SplitCol, SplitFile, SplitRatios, SplitSeed, TextCol,
                              TextFile, command_line, dataset_config_from, explicit_flags, parse_kv, user_errors)


@user_errors
def ocr(
    ctx: typer.Context,
    data: DataPath = None,
    dataset_file: DatasetFile = None,
    engine: Annotated[str, typer.Option(help="OCR engine: rapidocr (installed with the project, offline) or "
                                             "tesseract (apt install tesseract-ocr).")] = "rapidocr",
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Engine option key=value, repeatable (rapidocr: det_limit_side_len=480, text_score=0.5, use_cls=false, any RapidOCR setting; tesseract: lang, psm, min_confidence).")] = None,
    field: Annotated[str, typer.Option(help="Name of the text field the poster text becomes.")] = "poster_text",
    out: Annotated[Path, typer.Option(help="Folder of the OCR table (beside the caches).")] = Path("caches"),
    workers: Annotated[int, typer.Option(help="Worker processes (1 = one process using every core).")] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    format: Format = "auto", preset: Preset = None, plot: Plot = "longest", labels: Labels = "auto",
    drop_label: DropLabel = None,
    id_col: IdCol = None, text_col: TextCol = None, image_col: ImageCol = None, image_dir: ImageDir = None,
    image_pattern: ImagePattern = "{id}.jpg", label_col: LabelCol = None, label_cols: LabelCols = None,
    label_sep: LabelSep = "|", split_col: SplitCol = None, split_file: SplitFile = None,
    id_normalizer: IdNorm = None, split_seed: SplitSeed = None, split_ratios: SplitRatios = None,
    limit: Limit = None, meta_file: MetaFile = None, meta_cols: MetaCols = None,
    meta_text_cols: MetaTextCols = "plot", text_file: TextFile = None,
) -> None:
    """OCR every poster once into a table of texts by id; a repeat is a no-op, a killed run resumes.

    Then: extract --text-file <the table> --text-field poster_text --encoder minilm."""
    from extract.datasets import load_dataset
    from extract.ocr.engines import create_engine
    from extract.ocr.run import run_ocr
    from extract.readers.report import report_lines

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    eng = create_engine(engine, parse_kv(option, "--option"))
    ds = load_dataset(dataset_config_from(locals(), explicit_flags(ctx)))
    for line in report_lines(ds.report):
        typer.echo(line)
    typer.echo(f"ocr engine {eng.name} {eng.version()}, options {eng.options}")
    res = run_ocr(ds, eng, out, field, workers, progress=not quiet, command=command_line())
    if res.skipped:
        typer.echo(f"up to date: {res.path} (same settings already read)")
    else:
        typer.echo(f"wrote {res.path}: {len(ds.records)} posters in {res.seconds:.1f}s")
    typer.echo("posters by status: " + ", ".join(f"{k}={v}" for k, v in res.counts.items()))
    typer.echo(f"next: extract --text-file {res.path} --text-field {field} --encoder minilm ...")
