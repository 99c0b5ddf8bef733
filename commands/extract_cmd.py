"""`extract`: run one encoder over one modality of a data set into an HDF5 cache."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import (DataPath, DatasetFile, DropLabel, Format, IdCol, IdNorm, ImageCol, ImageDir,
                              ImagePattern, LabelCol, LabelCols, Labels, LabelSep, Limit, MetaCols, MetaFile,
                              MetaTextCols, Plot, Preset, TextFile,
                              SplitCol, SplitFile, SplitRatios, SplitSeed, TextCol, command_line,
                              dataset_config_from, explicit_flags, parse_kv, user_errors)
from extract.encoders import list_encoders

_ENCODER_HELP = "Encoder: " + ", ".join(list_encoders()) + " (clip = clip-image/clip-text by --modality)."


@user_errors
def extract(
    ctx: typer.Context,
    data: DataPath = None,
    dataset_file: DatasetFile = None,
    encoder: Annotated[str, typer.Option(help=_ENCODER_HELP)] = "efficientnet-lite0",
    modality: Annotated[Optional[str], typer.Option(help="image, text or meta (default: the encoder's own).")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Weights: hub name, pretrained tag, local file, or 'random'.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Encoder option key=value, repeatable (e.g. pooling=mean, max_length=128).")] = None,
    state_dict: Annotated[Optional[Path], typer.Option(help="Fine-tuned state dict loaded over the encoder.")] = None,
    text_field: Annotated[str, typer.Option(help="Named text field a text encoder reads (plot; meta_plot from --meta-file; poster_text from --text-file after `ocr`).")] = "plot",
    out: Annotated[Path, typer.Option(help="Cache folder.")] = Path("caches"),
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 64,
    workers: Annotated[int, typer.Option(help="DataLoader workers decoding/tokenizing.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="Stored feature dtype: float16 or float32.")] = "float16",
    tokens: Annotated[bool, typer.Option("--tokens", help="Also store token/patch states.")] = False,
    upto: Annotated[Optional[str], typer.Option(
        help="last:N: store the activations ENTERING the first of the encoder's last N blocks (the frozen "
             "part of `finetune --unfreeze last:N`, from the pretrained or --state-dict model) as the "
             "cache's tokens, always float32 (--dtype is ignored: fine-tuning recomputes from them "
             "exactly); features = their mean over real tokens. Not with --tokens.")] = None,
    format: Format = "auto", preset: Preset = None, plot: Plot = "longest", labels: Labels = "auto",
    drop_label: DropLabel = None,
    id_col: IdCol = None, text_col: TextCol = None, image_col: ImageCol = None, image_dir: ImageDir = None,
    image_pattern: ImagePattern = "{id}.jpg", label_col: LabelCol = None, label_cols: LabelCols = None,
    label_sep: LabelSep = "|", split_col: SplitCol = None, split_file: SplitFile = None,
    id_normalizer: IdNorm = None, split_seed: SplitSeed = None, split_ratios: SplitRatios = None,
    limit: Limit = None, meta_file: MetaFile = None, meta_cols: MetaCols = None,
    meta_text_cols: MetaTextCols = "plot", text_file: TextFile = None,
) -> None:
    """Extract features once; a repeat with the same settings is a no-op, a killed run resumes."""
    from extract.datasets import load_dataset
    from extract.readers.report import report_lines
    from extract.run import ExtractConfig, run_extract

    ds_cfg = dataset_config_from(locals(), explicit_flags(ctx))
    cfg = ExtractConfig(dataset=ds_cfg, encoder=encoder, modality=modality, weights=weights,
                        options=parse_kv(option, "--option"), state_dict=state_dict,
                        text_field=text_field, out=out, batch_size=batch_size, workers=workers,
                        device=device, dtype=dtype, tokens=tokens, upto=upto,
                        command=command_line())
    dataset = load_dataset(ds_cfg)
    for line in report_lines(dataset.report):  # every decision the reader made, before the long part
        typer.echo(line)
    res = run_extract(cfg, dataset=dataset)
    if res.skipped:
        typer.echo(f"up to date: {res.path} (same settings already extracted)")
    else:
        typer.echo(f"wrote {res.path}: {res.n} rows x {res.dim} dims in {res.seconds:.1f}s")
    if res.no_train_positive:
        typer.echo(f"genres with no training positive ({len(res.no_train_positive)}): "
                   + ", ".join(res.no_train_positive))
    if res.missing:
        typer.echo("missing (masked, not zero-filled): " + ", ".join(f"{k}={v}" for k, v in res.missing.items()))
