"""OCR speed on the real subset (`ocr` step, extract/ocr/): posters/s of RapidOCR on the first
N posters with 1 process (onnxruntime's own threads on every core) and with --workers 2
(one thread each): the ratio, and that both write the same table; then a run killed midway
(SIGKILL of the CLI process) and rerun, which must give the same bytes as the uninterrupted run.

    python bench/ocr_speed.py [--data DIR] [--n 200]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, subset_dir


def _ocr(data: Path, out: Path, n: int, workers: int) -> tuple[float, Path]:
    cmd = [sys.executable, str(REPO / "cli.py"), "ocr", "--preset", "poster-subset", "--data", str(data),
           "--limit", str(n), "--out", str(out), "--workers", str(workers), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0, next(out.glob("*.csv"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    data = subset_dir(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one, t1 = _ocr(data, tmp / "w1", a.n, 1)
        two, t2 = _ocr(data, tmp / "w2", a.n, 2)
        print(f"{a.n} posters, 1 process: {one:.1f} s = {a.n / one:.2f} posters/s "
              f"(6,325 posters: {6325 / (a.n / one) / 60:.0f} min)")
        print(f"{a.n} posters, --workers 2: {two:.1f} s = {a.n / two:.2f} posters/s; ratio {one / two:.2f}x; "
              f"same table: {t1.read_bytes() == t2.read_bytes()}")
        cmd = [sys.executable, str(REPO / "cli.py"), "ocr", "--preset", "poster-subset", "--data", str(data),
               "--limit", str(a.n), "--out", str(tmp / "k"), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        part = tmp / "k"
        while not list(part.glob(".*.partial/chunk-000000.json")) and proc.poll() is None:
            time.sleep(0.1)
        if proc.poll() is None:  # killed after its first finished chunk
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done = len(list(part.glob(".*.partial/chunk-*.json")))
        _, resumed = _ocr(data, part, a.n, 1)
        print(f"killed after {done} finished chunk(s), rerun: same bytes as uninterrupted: "
              f"{resumed.read_bytes() == t1.read_bytes()}")


if __name__ == "__main__":
    main()
