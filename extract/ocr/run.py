"""The `ocr` step: read the text on every poster once, into one table of texts by id.

    <out>/<dataset>-ocr-<engine>-<hash>.csv   id, <field>, ocr_status, ocr_confidence, ocr_lines
    <out>/<dataset>-ocr-<engine>-<hash>.json  engine, version, options, counts, seconds, command

The hash covers everything that changes the texts (the posters' names and sizes, the
engine, its version and options, the field name), so a second run with the same settings is
a no-op and a different setting never overwrites an old table. Join the texts back with
`extract --text-file <csv> --text-field poster_text`: a poster with no readable text has an
empty text (status no_text), which `extract` masks like any empty text, never encodes.

Resumable like `extract`: posters are read in fixed chunks, each written as a part file
(temp name, then rename) into `<out>/.<name>.partial/`; a killed run continues from the
finished chunks, and the table is assembled (temp name, then rename) when all exist, so a
resumed run writes the same bytes as an uninterrupted one (the engines are deterministic
on CPU). Worker processes each build their own engine.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cache.store import atomic_write, settings_hash
from extract.images import FILE_MISSING, OK, load_image
from extract.ocr.engines import OCREngine, create_engine, reading_order
from extract.records import Dataset

STATUSES = ("ok", "no_text", "image_missing", "image_corrupt", "no_image")
CHUNK = 32  # posters per part file: a killed run loses at most one chunk per worker


@dataclass
class OCRResult:
    path: Path
    skipped: bool
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def ocr_key(ds: Dataset, engine: OCREngine, text_field: str) -> str:
    return settings_hash({"dataset": ds.name, "dataset_fingerprint": ds.fingerprint(),
                          "engine": engine.describe(), "field": text_field})


def run_ocr(ds: Dataset, engine: OCREngine, out: Path, text_field: str = "poster_text", workers: int = 1,
            progress: bool = True, command: str = "") -> OCRResult:
    """OCR every record's poster (see the module docstring); returns where the table is."""
    t0 = time.perf_counter()
    if not text_field or text_field.startswith("ocr_") or text_field == "id":
        raise ValueError(f"--field {text_field!r}: give a text field name (not 'id' and not starting with 'ocr_')")
    if text_field in {k for r in ds.records for k in r.texts}:
        raise ValueError(f"--field {text_field!r} is already a text field of this data set; pick another name")
    name = f"{ds.name}-ocr-{engine.name}-{ocr_key(ds, engine, text_field)}"
    final = Path(out) / f"{name}.csv"
    if final.exists():
        meta = json.loads(final.with_suffix(".json").read_text()) if final.with_suffix(".json").exists() else {}
        return OCRResult(final, True, meta.get("counts", {}))
    part_dir = Path(out) / f".{name}.partial"
    part_dir.mkdir(parents=True, exist_ok=True)
    n = len(ds.records)
    chunks = [list(range(s, min(n, s + CHUNK))) for s in range(0, n, CHUNK)]
    todo = [c for c in range(len(chunks)) if not (part_dir / f"chunk-{c:06d}.json").exists()]
    jobs = [(c, [(i, str(ds.records[i].image) if ds.records[i].image else None) for i in chunks[c]])
            for c in todo]
    bar = tqdm(total=n, initial=n - sum(len(chunks[c]) for c in todo), unit="poster",
               desc=f"ocr {engine.name}", disable=not progress, smoothing=0.1)
    try:
        if workers > 1 and len(jobs) > 1:
            ctx = mp.get_context("spawn")  # onnxruntime sessions do not survive a fork
            with ctx.Pool(workers, initializer=_init_worker, initargs=(engine.name, engine.options)) as pool:
                for c, rows in pool.imap_unordered(_chunk_in_worker, jobs):
                    _write_chunk(part_dir, c, rows)
                    bar.update(len(rows))
        else:
            for c, items in jobs:
                rows = _read_chunk(engine, items)
                _write_chunk(part_dir, c, rows)
                bar.update(len(rows))
    finally:
        bar.close()
    rows = []
    for c in range(len(chunks)):
        rows += json.loads((part_dir / f"chunk-{c:06d}.json").read_text())
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    _write_table(final, ds, rows, text_field)
    seconds = time.perf_counter() - t0
    resumed = len(todo) < len(chunks)
    atomic_write(final.with_suffix(".json"), json.dumps(
        {**engine.describe(), "field": text_field, "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(),
         "counts": counts, "seconds": round(seconds, 1), "resumed": resumed, "command": command,
         "table": final.name}, indent=1) + "\n")
    shutil.rmtree(part_dir, ignore_errors=True)
    return OCRResult(final, False, counts, seconds)


def _read_chunk(engine: OCREngine, items: list[tuple[int, str | None]]) -> list[dict[str, Any]]:
    out = []
    for i, path in items:
        if path is None:
            out.append({"i": i, "status": "no_image", "text": "", "confidence": None, "lines": 0})
            continue
        status, im, _ = load_image(Path(path))
        if status != OK:
            out.append({"i": i, "status": "image_missing" if status == FILE_MISSING else "image_corrupt",
                        "text": "", "confidence": None, "lines": 0})
            continue
        lines = [ln for ln in reading_order(engine.read(im)) if ln.text.strip()]
        text = " ".join(" ".join(ln.text.split()) for ln in lines)
        conf = round(sum(ln.confidence for ln in lines) / len(lines), 4) if lines else None
        out.append({"i": i, "status": "ok" if text else "no_text", "text": text, "confidence": conf,
                    "lines": len(lines)})
    return out


def _write_chunk(part_dir: Path, c: int, rows: list[dict[str, Any]]) -> None:
    atomic_write(part_dir / f"chunk-{c:06d}.json", json.dumps(rows))


def _write_table(final: Path, ds: Dataset, rows: list[dict[str, Any]], text_field: str) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", text_field, "ocr_status", "ocr_confidence", "ocr_lines"])
    for r in sorted(rows, key=lambda r: r["i"]):
        conf = "" if r["confidence"] is None else f"{r['confidence']:.4f}"
        w.writerow([ds.records[r["i"]].id, r["text"], r["status"], conf, r["lines"]])
    atomic_write(final, buf.getvalue())


_ENGINE: OCREngine | None = None


def _init_worker(name: str, options: dict[str, Any]) -> None:
    global _ENGINE
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _ENGINE = create_engine(name, options)
    if name == "rapidocr":  # one thread per worker process: the workers are the parallelism
        _ENGINE.options = {**_ENGINE.options, "intra_op_num_threads": 1, "inter_op_num_threads": 1}


def _chunk_in_worker(job: tuple[int, list[tuple[int, str | None]]]) -> tuple[int, list[dict[str, Any]]]:
    assert _ENGINE is not None
    c, items = job
    return c, _read_chunk(_ENGINE, items)
