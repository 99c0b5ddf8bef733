"""The common tail of every reader: label set, split file or seeded split, counters, options.

A reader only turns files into ``Record``s (labels as names, split from a column or a file
name when it has one); ``finish`` does the rest the same way for every layout, so the
report has the same keys whatever the reader:

- ``records``, ``split_counts``
- ``dropped_labels``: {name: records} removed by the label set
- ``unknown_split_ids``: {split: ids in the split file that match no record}
- ``records_without_split``: records left UNSPLIT
- ``missing_images``: records whose image path does not exist (the extractor masks them)
- ``records_without_image``: records with no image at all (image None)
- ``empty_texts``: {text field: records where it is empty}
- ``records_without_labels``, ``labels_without_train_positive``, ``notes``
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from extract.readers.labels import apply_label_set
from extract.readers.splits import assign_from_file, get_normalizer, read_split_file, stratified_split
from extract.records import UNSPLIT, Dataset, Record

if TYPE_CHECKING:
    from extract.datasets import DatasetConfig

# Fields of DatasetConfig that do not change records (where the data lives), left out of options.
_NOT_OPTIONS = ("path", "image_dir", "split_file")


def resolve(path: Path | None, root: Path) -> Path | None:
    """A user path as given when it exists or is absolute, else relative to the data root."""
    if path is None or path.is_absolute() or path.exists():
        return path
    return root / path


def reader_options(cfg: "DatasetConfig") -> dict[str, Any]:
    opts = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_OPTIONS}
    opts["split_file"] = cfg.split_file.name if cfg.split_file else None  # contents reach the fingerprint via splits
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}


def finish(cfg: "DatasetConfig", name: str, records: list[Record], report: dict[str, Any],
           split_file: Path | None = None) -> Dataset:
    """Apply labels and splits to records read by a reader and build the Dataset."""
    notes: list[str] = report.setdefault("notes", [])
    label_names, dropped = apply_label_set(records, cfg.labels)
    report["dropped_labels"] = dropped

    report["unknown_split_ids"] = {}
    if split_file is not None:
        normalize = get_normalizer(cfg.id_normalizer)
        split_of = read_split_file(split_file, normalize)
        splits, not_found = assign_from_file([r.id for r in records], split_of, normalize)
        for r, s in zip(records, splits):
            r.split = s
        report["unknown_split_ids"] = not_found
        if cfg.limit is not None:
            notes.append(f"--limit {cfg.limit}: unknown_split_ids counts ids beyond the limit too")
    elif cfg.split_seed is not None:
        index = {n: i for i, n in enumerate(label_names)}
        y = np.zeros((len(records), len(label_names)), dtype=bool)  # (N, C)
        for row, r in enumerate(records):
            y[row, [index[n] for n in r.labels]] = True
        for r, s in zip(records, stratified_split(y, cfg.split_ratios, cfg.split_seed)):
            r.split = s
        notes.append(f"seeded stratified split, seed {cfg.split_seed}, ratios {list(cfg.split_ratios)}")

    dataset = Dataset(name=name, records=records, label_names=label_names, report=report,
                      options=reader_options(cfg))
    report["records"] = len(records)
    report["split_counts"] = dataset.split_counts()
    report["records_without_split"] = sum(r.split == UNSPLIT for r in records)
    report["records_without_image"] = sum(r.image is None for r in records)
    report["missing_images"] = sum(r.image is not None and not r.image.exists() for r in records)
    fields = sorted({f for r in records for f in r.texts})
    report["empty_texts"] = {f: sum(not r.texts.get(f, "").strip() for r in records) for f in fields}
    report["records_without_labels"] = sum(not r.labels for r in records)
    report["labels_without_train_positive"] = dataset.labels_without_train_positive()
    if report["records_without_split"] == len(records) and records:
        notes.append("no record has a split: give --split-file, --split-col or --split-seed")
    return dataset
