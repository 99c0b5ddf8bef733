"""Fine-tuning speed on the real subset: what the cached prefix buys, and what a head run costs
next to full fine-tuning. Same data, same run, same CPU:

  (a) a head (concat) on cached features (the frozen backbones' pooled features);
  (b) partial fine-tuning of the last block of both backbones, the frozen prefix cached;
  (c) the same without the cached prefix (full forward through the frozen part every step);
  (d) full fine-tuning of both backbones.

Prints seconds per epoch of each, (c)/(b) (target >= 5x on 2 cores) and (d)/(a) per ablation
run to early stop (target >= 100x): (a)'s whole run is timed; (d)'s run to early stop is its
measured seconds per epoch times `--full-epochs` (default 5: the epochs the full MiniLM
fine-tuning runs of docs/results/finetune/ took to stop, best epoch + patience, rounded down),
since running it to the end here would take an hour. One-off costs (the prefix caches) are
printed apart: they are paid once per backbone and block, then reused by every run.

    python bench/finetune_speed.py [--data DIR] [--cache-dir caches] [--epochs 2] [--full-epochs 5]
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
from finetune.run import run_finetune
from train_heads.config import HeadConfig
from train_heads.runs import train_and_write


def ft_config(data: Path, out: str, cache_dir: str, unfreeze: str, prefix: str, epochs: int) -> FinetuneConfig:
    head = HeadConfig(features={}, fusion="concat", lr=1e-3, batch_size=32, max_epochs=epochs, patience=epochs,
                      seed=0, standardize=False, out=out)
    return FinetuneConfig(dataset=DatasetConfig(path=data, preset="poster-subset"), head=head,
                          backbones={"image": BackboneSpec("efficientnet-lite0", unfreeze=unfreeze),
                                     "text": BackboneSpec("minilm", unfreeze=unfreeze)},
                          backbone_lr=5e-5, cached_prefix=prefix, cache_dir=cache_dir, workers=2, resume=False)


def per_epoch(run: Path) -> float:
    t = json.loads((run / "timing.json").read_text())
    return sum(t["epoch_seconds"]) / len(t["epoch_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--cache-dir", default="caches")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed for (b) and (c)")
    ap.add_argument("--full-epochs", type=int, default=5, help="epochs to early stop assumed for (d)")
    args = ap.parse_args()
    data = subset_dir(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ds = load_dataset(DatasetConfig(path=data, preset="poster-subset"))
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, Path] = {}
        # One-off: frozen features (for (a)) and the last-block prefixes (for (b)), cached once.
        t0 = time.perf_counter()
        frozen = ft_config(data, f"{tmp}/frozen", args.cache_dir, "none", "auto", 1)
        runs["frozen"], _, _ = run_finetune(frozen, dataset=ds, progress=False)
        t_frozen_caches = time.perf_counter() - t0
        feats = json.loads((runs["frozen"] / "config.json").read_text())["config"]["features"]
        t0 = time.perf_counter()
        _, m_a = train_and_write(HeadConfig(features=feats, fusion="concat", out=f"{tmp}/a", standardize=False),
                                 progress=False)
        t_a_run = time.perf_counter() - t0
        a_run = next(Path(f"{tmp}/a").iterdir())
        t_a_epoch = json.loads((a_run / "timing.json").read_text())["train_seconds"] / m_a["epochs"]
        t0 = time.perf_counter()
        runs["b"], _, _ = run_finetune(ft_config(data, f"{tmp}/b", args.cache_dir, "last:1", "auto", args.epochs),
                                       dataset=ds, progress=False)
        t_b_total = time.perf_counter() - t0
        runs["c"], _, _ = run_finetune(ft_config(data, f"{tmp}/c", args.cache_dir, "last:1", "off", args.epochs),
                                       dataset=ds, progress=False)
        runs["d"], _, _ = run_finetune(ft_config(data, f"{tmp}/d", args.cache_dir, "all", "off", 1),
                                       dataset=ds, progress=False)
        b, c, d = per_epoch(runs["b"]), per_epoch(runs["c"]), per_epoch(runs["d"])
        print(f"one-off: frozen feature caches + their first head run {t_frozen_caches:.1f}s; "
              f"(b)'s run incl. its prefix caches (first time only) {t_b_total:.1f}s")
        print(f"(a) head on cached features : {t_a_epoch:8.3f} s/epoch, {t_a_run:.1f}s to early stop "
              f"({m_a['epochs']} epochs)")
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
