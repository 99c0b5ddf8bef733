"""Data set readers for stage 1: every layout becomes ``extract.records.Dataset``.

Layouts (registry ``READERS``; ``--format auto`` picks one from the files):

- ``mmimdb``: the raw MM-IMDb folder (``dataset/<id>.json`` + ``<id>.jpeg``, ``split.json``).
- ``jsonl``: MM-IMDb as JSON lines (MMBT ``train/dev/test.jsonl``, Hugging Face example form).
- ``table``: any CSV/TSV/JSONL table, columns chosen by flags (text-only, image-only too).

Any layout may be joined by id with side files (extract.readers.side): a metadata table
(``--meta-file``, metadata fields and a longer plot) and tables of extra text fields
(``--text-file``, e.g. poster text from `ocr`).

``PRESETS`` fill the flags of a known data set, so ``--preset poster-subset --data DIR``
is enough for the MM-IMDb poster subset. Labels are always names (``--labels auto``: a
table's own names, GMU's 23 genres for the MM-IMDb layouts and presets); splits come from a
split column, a split file, the jsonl file names, or a seeded stratified split.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

# DatasetConfig lives in extract.dataset_config, which imports neither the readers nor this
# dispatcher, so the readers can import it without a circle; re-exported here for callers.
from extract.dataset_config import (AUTO_LABELS, PRESETS, DatasetConfig, field_defaults,
                                    list_presets)
from extract.readers.jsonl import looks_like_mm_jsonl, read_jsonl, split_files
from extract.readers.mmimdb_raw import looks_like_mmimdb, read_mmimdb
from extract.readers.side import attach_side_files
from extract.readers.table import TABLE_SUFFIXES, read_table
from extract.records import Dataset

READERS: dict[str, Callable[[DatasetConfig], Dataset]] = {
    "mmimdb": read_mmimdb,
    "jsonl": read_jsonl,
    "table": read_table,
}
# --format's choices are checked by DatasetConfig against FORMATS, as it cannot see READERS
# (no circle); tests/test_dataset_file.py pins that the two agree.

# Flags only the table reader reads, by field name and CLI flag.
_TABLE_FLAGS = {"id_col": "--id-col", "text_cols": "--text-col", "image_col": "--image-col",
                "image_dir": "--image-dir", "label_col": "--label-col", "label_cols": "--label-cols",
                "split_col": "--split-col", "meta_cols": "--meta-col", "image_pattern": "--image-pattern"}


def _table_flags_set(cfg: DatasetConfig) -> list[str]:
    """The table-only flags that differ from their defaults."""
    defaults = field_defaults(cfg)
    return [flag for name, flag in _TABLE_FLAGS.items() if getattr(cfg, name) != defaults[name]]


def detect_format(cfg: DatasetConfig) -> str:
    """The reader for cfg.path: table flags mean table; else look at the files."""
    path = cfg.path
    if _table_flags_set(cfg):
        return "table"
    if path.is_dir():
        if looks_like_mmimdb(path):
            return "mmimdb"
        return "jsonl" if split_files(path) else "table"
    if path.suffix.lower() == ".jsonl" and looks_like_mm_jsonl(path):
        return "jsonl"
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    raise ValueError(f"cannot tell the format of {path} (--data); pass --format, one of {list_readers()}")


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Read the data set cfg describes (see the module docstring for layouts)."""
    if not cfg.path.exists():
        raise FileNotFoundError(f"data set {cfg.path} not found (--data)")
    fmt = detect_format(cfg) if cfg.format == "auto" else cfg.format
    if fmt != "table":
        set_flags = _table_flags_set(cfg)
        if set_flags:
            raise ValueError(f"{', '.join(set_flags)} apply to --format table only, not {fmt!r}")
    dataset = READERS[fmt](_resolve_labels(cfg, fmt))
    attach_side_files(dataset, cfg)
    dataset.options["format"] = fmt
    dataset.report["label_set_auto"] = cfg.labels == AUTO_LABELS
    return dataset


def _resolve_labels(cfg: DatasetConfig, fmt: str) -> DatasetConfig:
    """--labels auto -> a table's own label names, GMU's 23 genres for the MM-IMDb layouts.

    The resolved name is what the reader records in the options, so auto and the explicit
    set it stands for make the same cache."""
    if cfg.labels != AUTO_LABELS:
        return cfg
    return dataclasses.replace(cfg, labels="data" if fmt == "table" else "mmimdb23")


def list_readers() -> list[str]:
    return sorted(READERS)


__all__ = ["AUTO_LABELS", "PRESETS", "READERS", "DatasetConfig", "detect_format", "list_presets", "list_readers",
           "load_dataset"]
