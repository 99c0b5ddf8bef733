"""Side files joined into a read data set by id: a metadata table and extra text fields.

- ``--meta-file metadata.csv`` (CSV/TSV/JSONL; the poster-subset preset picks up
  ``metadata/metadata.csv`` when present): every column but the id, ``*_src`` provenance
  columns and the text columns becomes a metadata field of ``Record.meta`` (``--meta-cols``
  chooses them), each cell parsed into a list of entity names by `entity_list` (a JSON list,
  a ``|``-separated string, or one scalar). Columns in ``--meta-text-cols`` (default ``plot``)
  become text fields instead (named as the column, or ``meta_<column>`` when the data set
  already has a text field of that name: printed).
- ``--text-file FILE`` (CSV/TSV/JSONL with an ``id`` column, e.g. the output of `ocr`): its
  other columns become text fields; columns starting with ``ocr_`` are OCR bookkeeping
  (status, confidence) and are not joined.

A record without a row in the side file gets no metadata (every field empty, so a metadata
encoder masks it like a missing poster) or no text (an empty text, masked by `extract`); the
counts are in the read report. Texts and metadata joined here are "side" inputs: they are
hashed into the name of a cache that reads them (`Dataset.side_fingerprint`), never into the
data set fingerprint, so adding metadata does not rename the image and plot caches.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extract.readers.splits import get_normalizer
from extract.records import Dataset, is_blank

if TYPE_CHECKING:
    from extract.dataset_config import DatasetConfig

_LIST_SEP = "|"  # the separator of a non-JSON list cell ("Ridley Scott|Tony Scott")


def entity_list(value: Any, where: str = "") -> list[str]:
    """A metadata value as a list of entity names, in order, blanks and repeats dropped.

    None / "" / NaN -> []; a JSON list (``'["a", "b"]'``) or a Python list -> its items (a
    dict item uses its "name", as IMDbPY-style JSON has); another string -> split on ``|``;
    a number -> its text ("1983"). A cell that looks like a list (``["``, or ``[...,...]``) but
    is not valid JSON is refused (a truncated or badly quoted list would otherwise become one
    odd entity); "[REC] 3" is a title, not a list."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return []
        if s.startswith(('["', "['", "[]")) or (s.startswith("[") and s.endswith("]") and "," in s):
            try:
                value = json.loads(s)
            except json.JSONDecodeError:
                raise ValueError(f"{where}: {s[:60]!r} starts like a JSON list but is not one; "
                                 'write lists as JSON (["a", "b"]) or as a|b') from None
            if not isinstance(value, list):
                raise ValueError(f"{where}: {s[:60]!r} is not a JSON list of names")
        else:
            value = s.split(_LIST_SEP)
    if not isinstance(value, (list, tuple)):
        value = [value]
    out: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("name", "")
        if isinstance(item, (list, tuple, dict)):
            raise ValueError(f"{where}: nested lists are not names: {str(item)[:60]!r}")
        name = " ".join(str(item).split()) if item is not None else ""
        if name and not is_blank(name) and name not in out:
            out.append(name)
    return out


def attach_side_files(ds: Dataset, cfg: "DatasetConfig") -> None:
    """Join cfg.meta_file and cfg.text_files into ds by id (see the module docstring)."""
    if cfg.meta_file is not None:
        path = _resolve(cfg.meta_file, cfg.path)
        if path.is_file():
            _join_meta(ds, path, cfg)
        elif cfg.meta_file_optional:
            ds.report.setdefault("notes", []).append(f"no metadata file {path}: no metadata fields")
        else:
            raise FileNotFoundError(f"--meta-file {path} not found")
    for f in cfg.text_files:
        path = _resolve(f, cfg.path)
        if not path.is_file():
            raise FileNotFoundError(f"--text-file {path} not found")
        _join_texts(ds, path, cfg)


def _resolve(p: Path, data: Path) -> Path:
    """A relative side-file path is looked up in the data folder first, then the working directory."""
    if p.is_absolute():
        return p
    root = data if data.is_dir() else data.parent
    return root / p if (root / p).exists() or not p.exists() else p


def _table(path: Path, cfg: "DatasetConfig", flag: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """(id column, {normalised id: row}) of a side table; refuses repeated ids."""
    from extract.readers.table import read_rows

    columns, rows = read_rows(path)
    id_col = next((c for c in (cfg.id_col, "id", "Id", "ID") if c and c in columns), None)
    if id_col is None:
        raise ValueError(f"{flag} {path}: no id column (looked for {cfg.id_col or 'id'}); columns: {columns[:12]}")
    norm = get_normalizer(cfg.id_normalizer)
    by_id: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(rows, start=2):
        key = norm(str(row.get(id_col, "")).strip())
        if key in by_id:
            raise ValueError(f"{flag} {path}: id {row.get(id_col)!r} appears twice (row {n}); one row per id")
        by_id[key] = row
    return id_col, by_id


def _join_meta(ds: Dataset, path: Path, cfg: "DatasetConfig") -> None:
    id_col, by_id = _table(path, cfg, "--meta-file")
    columns = list(next(iter(by_id.values())).keys()) if by_id else []
    text_cols = [c for c in cfg.meta_text_cols if c in columns]
    skip = {id_col, *text_cols}
    fields = cfg.meta_fields if cfg.meta_fields is not None else [
        c for c in columns if c not in skip and not c.endswith("_src") and c != "in_mmimdb"]
    unknown = [c for c in fields if c not in columns]
    if unknown:
        raise ValueError(f"--meta-cols {unknown} not in {path}; its columns: {columns}")
    norm = get_normalizer(cfg.id_normalizer)
    existing = {k for r in ds.records for k in r.texts}
    names = {c: (f"meta_{c}" if c in existing else c) for c in text_cols}
    matched = 0
    for r in ds.records:
        row = by_id.get(norm(r.id))
        matched += row is not None
        for c in fields:
            r.meta[c] = entity_list(row.get(c), f"{path} id {r.id} column {c}") if row else []
        for c, name in names.items():
            r.texts[name] = str(row.get(c) or "") if row else ""
            ds.side_texts.add(name)
    ds.meta_fields = list(fields)
    have = {c: sum(bool(r.meta[c]) for r in ds.records) for c in fields}
    ds.report["meta"] = {"file": str(path), "rows_matched": matched, "records": len(ds.records),
                         "fields": have, "text_fields": names}
    renamed = [f"{c} -> {n}" for c, n in names.items() if c != n]
    if renamed:
        ds.report.setdefault("notes", []).append(f"--meta-file text column(s) renamed to avoid the data set's own: {renamed}")


def _join_texts(ds: Dataset, path: Path, cfg: "DatasetConfig") -> None:
    id_col, by_id = _table(path, cfg, "--text-file")
    columns = list(next(iter(by_id.values())).keys()) if by_id else []
    fields = [c for c in columns if c != id_col and not c.startswith("ocr_")]
    clash = sorted({k for r in ds.records for k in r.texts} & set(fields))
    if clash:
        raise ValueError(f"--text-file {path}: text field(s) {clash} already exist in the data set; rename the column")
    if not fields:
        raise ValueError(f"--text-file {path} has no text column besides {id_col!r} (and ocr_* bookkeeping)")
    norm = get_normalizer(cfg.id_normalizer)
    counts = {"file": str(path), "rows_matched": 0, "empty": {}}
    for r in ds.records:
        row = by_id.get(norm(r.id))
        counts["rows_matched"] += row is not None
        for c in fields:
            r.texts[c] = str(row.get(c) or "") if row else ""
    for c in fields:
        ds.side_texts.add(c)
        counts["empty"][c] = sum(is_blank(r.texts[c]) for r in ds.records)
    ds.report.setdefault("text_files", []).append(counts)
