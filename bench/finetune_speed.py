"""Fine-tuning speed on the real subset: what the cached prefix buys, and what a head run costs
next to full fine-tuning. Same data, same run, same CPU:

  (a) a head (concat) on cached features (the frozen backbones' pooled features);
  (b) partial fine-tuning of the last block of both backbones, the frozen prefix cached;
  (c) the same without the cached prefix (full forward through the frozen part every step);
  (d) full fine-tuning of both backbones.

MiniLM reads the first 128 tokens in every case; seconds per epoch include the epoch's dev
evaluation; each is averaged over `--epochs` epochs.

Prints seconds per epoch of each, (c)/(b) (target >= 5x on 2 cores) and (d)/(a) per ablation
run to early stop (target >= 100x): (a)'s whole run is timed; (d)'s run to early stop is its
measured seconds per epoch times `--full-epochs` (default 5; a single epoch of (d) already
costs over 100 runs of (a) on 2 cores), since running it to the end here would take an hour.
One-off costs (building models, reading the prefix caches) are printed apart: they are paid
once per run, and the prefix caches once per backbone and block, reused by every run.

    python bench/finetune_speed.py [--data DIR] [--cache-dir caches] [--epochs 1] [--full-epochs 5]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import subset_dir

import torch

from extract.datasets import DatasetConfig, load_dataset
from finetune.config import BackboneSpec, FinetuneConfig
from finetune.run import prepare, run_finetune
from train_heads.config import HeadConfig
from train_heads.runs import train_and_write


def ft_config(data: Path, out: str, cache_dir: str, unfreeze: str, prefix: str, epochs: int) -> FinetuneConfig:
    # standardize off: the one-off statistics pass is not part of an epoch's cost
    head = HeadConfig(features={}, fusion="concat", lr=1e-3, batch_size=32, max_epochs=epochs, patience=epochs,
                      seed=0, standardize=False, out=out)
    return FinetuneConfig(dataset=DatasetConfig(path=data, preset="poster-subset"), head=head,
                          backbones={"image": BackboneSpec("efficientnet-lite0", unfreeze=unfreeze),
                                     "text": BackboneSpec("minilm", options={"max_length": 128}, unfreeze=unfreeze)},
                          backbone_lr=5e-5, cached_prefix=prefix, cache_dir=cache_dir, workers=2, resume=False)


def epoch_seconds(cfg: FinetuneConfig, ds) -> tuple[float, float]:
    """(seconds per training epoch incl. its dev evaluation, one-off set-up seconds: models
    built, input caches read or made); the run's finish pass (export, caches) is not timed."""
    t0 = time.perf_counter()
    loop = prepare(cfg, ds, "bench", progress=False, say=lambda _: None)
    setup = time.perf_counter() - t0
    trained = loop.run("bench")
    loop.ckpt_path.unlink(missing_ok=True)
    return sum(trained.epoch_seconds) / len(trained.epoch_seconds), setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--cache-dir", default="caches")
    ap.add_argument("--epochs", type=int, default=1, help="epochs timed for (b), (c) and (d)")
    ap.add_argument("--full-epochs", type=int, default=5, help="epochs to early stop assumed for (d)")
    args = ap.parse_args()
    data = subset_dir(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ds = load_dataset(DatasetConfig(path=data, preset="poster-subset"))
    with tempfile.TemporaryDirectory() as tmp:
        # (a): the frozen backbones' float32 feature caches (made once), then train-head to early stop
        frozen, _, _ = run_finetune(ft_config(data, f"{tmp}/frozen", args.cache_dir, "none", "auto", 1), dataset=ds,
                                    progress=False, say=lambda _: None)
        feats = json.loads((frozen / "config.json").read_text())["config"]["features"]
        t0 = time.perf_counter()
        _, m_a = train_and_write(HeadConfig(features=feats, fusion="concat", out=f"{tmp}/a"), progress=False)
        t_a_run = time.perf_counter() - t0
        a_run = next(p for p in Path(f"{tmp}/a").iterdir() if p.is_dir())
        t_a_epoch = json.loads((a_run / "timing.json").read_text())["train_seconds"] / m_a["epochs"]
        b, b_setup = epoch_seconds(ft_config(data, f"{tmp}/b", args.cache_dir, "last:1", "auto", args.epochs), ds)
        c, c_setup = epoch_seconds(ft_config(data, f"{tmp}/c", args.cache_dir, "last:1", "off", args.epochs), ds)
        d, d_setup = epoch_seconds(ft_config(data, f"{tmp}/d", args.cache_dir, "all", "off", args.epochs), ds)
    print(f"set-up (models built, inputs read; the prefix caches were made earlier and reused): "
          f"(b) {b_setup:.1f}s, (c) {c_setup:.1f}s, (d) {d_setup:.1f}s")
    print(f"(a) head on cached features : {t_a_epoch:8.3f} s/epoch, {t_a_run:.1f}s to early stop "
          f"({m_a['epochs']} epochs, run folder written)")
    print(f"(b) last block, cached prefix: {b:8.2f} s/epoch")
    print(f"(c) last block, full forward : {c:8.2f} s/epoch")
    print(f"(d) full fine-tuning         : {d:8.2f} s/epoch")
    print(f"(c)/(b) = {c / b:.1f}x  (target >= 5x)")
    d_run = d * args.full_epochs
    print(f"(d)/(a) per ablation run to early stop = {d_run:.0f}s / {t_a_run:.1f}s = {d_run / t_a_run:.0f}x "
          f"(target >= 100x; (d) = {args.full_epochs} epochs x {d:.1f}s)")
    print(f"(d)/(a) per epoch = {d / t_a_epoch:.0f}x")


if __name__ == "__main__":
    main()
