"""`train-head`: train one fusion head on cached features and write a run folder."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from commands._common import parse_kv, user_errors
from commands._head_flags import (FixedThreshold, GradClip, LabelSmoothingForm, MinDelta, MinLr, Optimizer, Patience,
                                     PlateauFactor, PlateauPatience, Scheduler, Threshold, ThresholdGrid, WarmupEpochs)
from train_heads.config import CALIBRATIONS, DEFAULT_THRESHOLD_GRID
from train_heads.fusion import list_fusions
from train_heads.losses import list_losses


@user_errors
def train_head(
    features: Annotated[list[str], typer.Option("--features", "-f", help="name=<cache file or encoder name>, repeatable, e.g. image=caches/x.h5 text=minilm.")],
    fusion: Annotated[str, typer.Option(help="Head: " + ", ".join(list_fusions()) + ".")] = "gmu",
    head_opt: Annotated[Optional[list[str]], typer.Option("--head-opt", "-o", help="Head option key=value, repeatable (hidden=256, dropout=0.3, modality=text; linear: solver=lbfgs|adamw, C=1.0). Checked against the head's options before training.")] = None,
    loss: Annotated[str, typer.Option(help="Loss: " + ", ".join(list_losses()) + ".")] = "bce",
    loss_opt: Annotated[Optional[list[str]], typer.Option("--loss-opt", help="Loss option key=value (gamma=2, alpha=0.25...).")] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing e on any loss.")] = 0.0,
    label_smoothing_form: LabelSmoothingForm = "symmetric",
    threshold: Threshold = "per_class",
    threshold_grid: ThresholdGrid = DEFAULT_THRESHOLD_GRID,
    fixed_threshold: FixedThreshold = 0.5,
    calibrate: Annotated[str, typer.Option(help="Probability calibration fitted on dev before the thresholds are tuned: " + ", ".join(CALIBRATIONS) + " (temperature: one T, Guo et al. 2017; saved with the run, applied by predict).")] = "none",
    optimizer: Optimizer = "adamw",
    momentum: Annotated[float, typer.Option(help="SGD momentum (--optimizer sgd only).")] = 0.9,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="Weight decay (adamw: decoupled; adam, sgd: L2 in the gradient).")] = 1e-2,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 256,
    max_epochs: Annotated[int, typer.Option(help="Epoch limit.")] = 200,
    patience: Patience = 5,
    min_delta: MinDelta = 1e-4,
    warmup_epochs: WarmupEpochs = 0.0,
    scheduler: Scheduler = "plateau",
    plateau_factor: PlateauFactor = 0.5,
    plateau_patience: PlateauPatience = None,
    min_lr: MinLr = 0.0,
    grad_clip: GradClip = 1.0,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same numbers on CPU).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    tokens: Annotated[bool, typer.Option(help="Use token features when present and the head attends.")] = True,
    standardize: Annotated[Optional[bool], typer.Option("--standardize/--no-standardize", help="z-score each modality's pooled features with the train split's mean/std (saved with the head, applied by predict). Default: every modality except sparse ones (over half zeros: TF-IDF, multi-hot), which keep raw values; the choice is printed.")] = None,
    train_on_unsplit: Annotated[bool, typer.Option(help="Also train on rows outside the split.")] = False,
    modality_dropout: Annotated[float, typer.Option(help="Each training row drops each modality with this probability (never all of a row's; zero features, present=False), so the head copes with missing ones (evaluate --missing). 0 = off.")] = 0.0,
    cache_dir: Annotated[str, typer.Option(help="Where encoder names in --features are looked up.")] = "caches",
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: head, features with encoders, loss, threshold, seed, settings hash).")] = None,
    out: Annotated[str, typer.Option(help="Runs folder.")] = "runs",
    force: Annotated[bool, typer.Option(help="Retrain and replace an existing run folder of the same name.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a head on cached features, tune thresholds on dev, report on test, save the run.

    A run that already exists with the same settings is not retrained ("up to date"; --force
    retrains it); a different run under the same --name is refused unless --force."""
    from cache.features import parse_feature_specs
    from train_heads.config import HeadConfig
    from cache.store import check_out_folder
    from train_heads.runs import cache_sources, existing_run, train_and_write
    from train_heads.train import check_head, check_modalities, uses_lbfgs

    caches = {m: str(p) for m, p in parse_feature_specs(features, cache_dir).items()}
    cfg = HeadConfig(features=caches, fusion=fusion, fusion_kw=parse_kv(head_opt, "--head-opt"), loss=loss,
                     loss_kw=parse_kv(loss_opt, "--loss-opt"), label_smoothing=label_smoothing,
                     label_smoothing_form=label_smoothing_form, threshold=threshold,
                     threshold_grid=threshold_grid, fixed_threshold=fixed_threshold, calibrate=calibrate,
                     optimizer=optimizer, momentum=momentum, lr=lr, weight_decay=weight_decay,
                     batch_size=batch_size, max_epochs=max_epochs, patience=patience, min_delta=min_delta,
                     warmup_epochs=warmup_epochs, scheduler=scheduler, plateau_factor=plateau_factor,
                     plateau_patience=plateau_patience, min_lr=min_lr, grad_clip=grad_clip, seed=seed,
                     device=device, tokens=tokens, standardize=standardize,
                     train_on_unsplit=train_on_unsplit, modality_dropout=modality_dropout, name=name, out=out)
    # Everything that can be refused is refused here, before minutes of training.
    check_out_folder(out)
    sources = cache_sources(cfg)
    check_modalities(sources)
    check_head(cfg, sources)
    path, why = existing_run(cfg, sources)
    if why == "same" and not force:
        typer.echo(f"up to date: {path} (same settings already trained; --force to retrain)")
        return
    if why not in (None, "same") and not force:
        raise ValueError(f"run folder {path} exists and {why}; choose another --name or --out, "
                         "or pass --force to replace it")
    if uses_lbfgs(cfg):
        typer.echo(f"{cfg.fusion}: solver lbfgs, full-batch L-BFGS with L2 C={cfg.fusion_kw.get('C', 1.0)} "
                   "(-o solver=adamw for mini-batch training); --optimizer, --momentum, --lr, --batch-size, "
                   "--weight-decay, --scheduler, --plateau-factor, --plateau-patience, --min-lr, "
                   "--warmup-epochs and --grad-clip do not apply")
    elif cfg.scheduler == "plateau" and plateau_patience is None:  # a value chosen for the user: say it
        typer.echo(f"plateau scheduler: lr x{cfg.plateau_factor:g} after {cfg.plateau_patience_used()} "
                   f"epoch(s) without dev gain (max(1, --patience // 3); --plateau-patience to choose), "
                   f"min lr {cfg.min_lr:g}")
    path, m = train_and_write(cfg, progress=not quiet)
    std = json.loads((path / "config.json").read_text()).get("standardized", {})
    if standardize is None:  # the default chose per modality: say what
        raw = [k for k, v in std.items() if not v]
        typer.echo("standardize (auto): z-scored " + (", ".join(k for k, v in std.items() if v) or "none")
                   + (f"; kept raw (sparse: over half zeros) {', '.join(raw)}" if raw else "")
                   + " (--standardize / --no-standardize to choose)")
    if "temperature" in m:
        typer.echo(f"calibrate: temperature T={m['temperature']:.4f} fitted on dev, applied before the "
                   "thresholds (saved with the run)")
    t, t5 = m["test"], m["test@0.5"]
    rule = f"fixed {cfg.fixed_threshold:g}" if threshold == "fixed" else threshold
    typer.echo(f"{path}: best epoch {m['best_epoch']}/{m['epochs']}  test macro-F1 {t['macro_f1']:.4f} "
               f"micro-F1 {t['micro_f1']:.4f} ({rule}); at 0.5: macro {t5['macro_f1']:.4f} "
               f"micro {t5['micro_f1']:.4f}")
    if t["classes_without_positives"]:
        typer.echo(f"excluded from macro averages (no test positive): {', '.join(t['classes_without_positives'])}")
