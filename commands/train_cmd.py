"""`train-head`: train one fusion head on cached features and write a run folder."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from commands._common import parse_kv, user_errors
from train_heads.fusion import list_fusions
from train_heads.losses import list_losses
from train_heads.thresholds import THRESHOLDS


@user_errors
def train_head(
    features: Annotated[list[str], typer.Option("--features", "-f", help="name=<cache file or encoder name>, repeatable, e.g. image=caches/x.h5 text=minilm.")],
    fusion: Annotated[str, typer.Option(help="Head: " + ", ".join(list_fusions()) + ".")] = "gmu",
    head_opt: Annotated[Optional[list[str]], typer.Option("--head-opt", "-o", help="Head option key=value, repeatable (hidden=256, dropout=0.3, modality=text; linear: solver=lbfgs|adamw, C=1.0). Checked against the head's options before training.")] = None,
    loss: Annotated[str, typer.Option(help="Loss: " + ", ".join(list_losses()) + ".")] = "bce",
    loss_opt: Annotated[Optional[list[str]], typer.Option("--loss-opt", help="Loss option key=value (gamma=2, alpha=0.25...).")] = None,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing on any loss.")] = 0.0,
    threshold: Annotated[str, typer.Option(help="Threshold strategy tuned on dev: " + ", ".join(sorted(THRESHOLDS)) + ".")] = "per_class",
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-2,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 256,
    max_epochs: Annotated[int, typer.Option(help="Epoch limit.")] = 200,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs) on dev macro-F1.")] = 5,
    min_delta: Annotated[float, typer.Option(help="Smallest dev macro-F1 gain that counts.")] = 1e-4,
    warmup_epochs: Annotated[float, typer.Option(help="Linear warmup length in epochs.")] = 0.0,
    scheduler: Annotated[str, typer.Option(help="plateau, cosine or none.")] = "plateau",
    grad_clip: Annotated[float, typer.Option(help="Max gradient norm (0: off).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same numbers on CPU).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda.")] = "auto",
    tokens: Annotated[bool, typer.Option(help="Use token features when present and the head attends.")] = True,
    standardize: Annotated[Optional[bool], typer.Option("--standardize/--no-standardize", help="z-score each modality's pooled features with the train split's mean/std (saved with the head, applied by predict). Default: every modality except sparse ones (over half zeros: TF-IDF, multi-hot), which keep raw values; the choice is printed.")] = None,
    train_on_unsplit: Annotated[bool, typer.Option(help="Also train on rows outside the split.")] = False,
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
                     threshold=threshold, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                     max_epochs=max_epochs, patience=patience, min_delta=min_delta,
                     warmup_epochs=warmup_epochs, scheduler=scheduler, grad_clip=grad_clip, seed=seed,
                     device=device, tokens=tokens, standardize=standardize,
                     train_on_unsplit=train_on_unsplit, name=name, out=out)
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
                   "(-o solver=adamw for AdamW); --lr, --batch-size, --weight-decay, --scheduler, "
                   "--warmup-epochs and --grad-clip do not apply")
    path, m = train_and_write(cfg, progress=not quiet)
    std = json.loads((path / "config.json").read_text()).get("standardized", {})
    if standardize is None:  # the default chose per modality: say what
        raw = [k for k, v in std.items() if not v]
        typer.echo("standardize (auto): z-scored " + (", ".join(k for k, v in std.items() if v) or "none")
                   + (f"; kept raw (sparse: over half zeros) {', '.join(raw)}" if raw else "")
                   + " (--standardize / --no-standardize to choose)")
    t, t5 = m["test"], m["test@0.5"]
    typer.echo(f"{path}: best epoch {m['best_epoch']}/{m['epochs']}  test macro-F1 {t['macro_f1']:.4f} "
               f"micro-F1 {t['micro_f1']:.4f} ({threshold}); at 0.5: macro {t5['macro_f1']:.4f} "
               f"micro {t5['micro_f1']:.4f}")
    if t["classes_without_positives"]:
        typer.echo(f"excluded from macro averages (no test positive): {', '.join(t['classes_without_positives'])}")
