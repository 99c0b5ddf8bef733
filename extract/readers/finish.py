"""The common tail of every reader: label set, split file or seeded split, counters, options.

A reader only turns files into ``Record``s (labels as names, split from a column or a file
name when it has one); ``finish`` does the rest the same way for every layout, so the
report has the same keys whatever the reader:

- ``records``, ``split_counts``
- ``label_set``, ``label_names``: the label set used (``--labels auto`` resolved) and its names
- ``dropped_labels``: {name: records} removed by the label set
- ``removed_labels``: {name: records} removed by ``--drop-label``
- ``renamed_labels``: {name as written: {"to": GMU name, "records": n}} matched to a GMU genre
- ``normalised_labels``: {NFC name: records} that wrote it in another Unicode form (also a note)
- ``unknown_split_ids``: {split: ids in the split file that match no record}
- ``records_without_split``: records left UNSPLIT
- ``missing_images``: records whose image path does not exist (the extractor masks them)
- ``records_without_image``: records with no image at all (image None)
- ``empty_texts``: {text field: records where it is empty}
- ``records_without_labels``, ``labels_without_train_positive``, ``notes``

and refuses a data set nothing can be trained on (no record with a label, or no record in
the train split) with one line saying what to pass.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from extract.readers.labels import apply_label_set
from extract.readers.splits import assign_from_file, get_normalizer, read_split_file, stratified_split
from extract.records import UNSPLIT, Dataset, Record, is_blank

if TYPE_CHECKING:
    from extract.dataset_config import DatasetConfig

# Fields of DatasetConfig that do not change records (where the data lives), left out of options.
# The side files (extract.readers.side) are hashed by content into the caches that read them.
_NOT_OPTIONS = ("path", "image_dir", "split_file", "table", "meta_file", "meta_fields", "meta_text_cols",
                "text_files", "meta_file_optional")
# Options added after caches existed, left out while at their default, so those caches keep their names.
_LATER_OPTIONS: dict[str, Any] = {"drop_labels": []}
# What to pass when no record has a label, per reader.
_LABEL_HINT = {"table": "pass --label-col COLUMN (a list or joined names per row) or --label-cols a,b,c "
                        "(0/1 columns; --label-cols auto finds them)",
               "mmimdb": "every movie's 'genres' list is empty: check --data",
               "jsonl": "every row's 'label' list is empty: check --data"}


def resolve(path: Path | None, root: Path) -> Path | None:
    """A user path as given when it exists or is absolute, else relative to the data root."""
    if path is None or path.is_absolute() or path.exists():
        return path
    return root / path


def reader_options(cfg: "DatasetConfig") -> dict[str, Any]:
    opts = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_OPTIONS}
    opts["split_file"] = cfg.split_file.name if cfg.split_file else None  # contents reach the fingerprint via splits
    for k, default in _LATER_OPTIONS.items():
        if opts.get(k) == default:
            del opts[k]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}


def finish(cfg: "DatasetConfig", name: str, records: list[Record], report: dict[str, Any],
           split_file: Path | None = None) -> Dataset:
    """Apply labels and splits to records read by a reader and build the Dataset."""
    notes: list[str] = report.setdefault("notes", [])
    labels = apply_label_set(records, cfg.labels, cfg.drop_labels)
    label_names = labels.names
    report["label_set"] = cfg.labels
    report["label_names"] = label_names
    report["dropped_labels"] = labels.dropped
    report["removed_labels"] = labels.removed
    report["renamed_labels"] = labels.renamed
    report["normalised_labels"] = labels.normalised
    if labels.normalised:
        notes.append("label names written with decomposed accents put in Unicode NFC (one label, not two), "
                     "records per name: " + ", ".join(f"{k}={v}" for k, v in labels.normalised.items()))

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
    report["empty_texts"] = {f: sum(is_blank(r.texts.get(f)) for r in records) for f in fields}
    report["records_without_labels"] = sum(not r.labels for r in records)
    report["labels_without_train_positive"] = dataset.labels_without_train_positive()
    if records:
        _refuse_untrainable(cfg, dataset, split_file)
    return dataset


def _refuse_untrainable(cfg: "DatasetConfig", ds: Dataset, split_file: Path | None) -> None:
    """One line saying what to pass when no record has a label or none is in the train split."""
    report = ds.report
    if report["records_without_labels"] == len(ds.records):
        dropped, removed = report["dropped_labels"], {k: v for k, v in report["removed_labels"].items() if v}
        if dropped or removed:
            why = [f"{flag} removed {', '.join(f'{k}={v}' for k, v in list(d.items())[:5])}"
                   for flag, d in ((f"--labels {cfg.labels}", dropped), ("--drop-label", removed)) if d]
            fix = "pass --labels data to keep the data's own names" if dropped else "drop fewer labels"
            raise ValueError(f"no record keeps a label: {'; '.join(why)}; {fix}")
        hint = _LABEL_HINT.get(str(report.get("format")), "check the label flags")
        raise ValueError(f"no record of the {len(ds.records)} has a label; {hint}")
    counts = report["split_counts"]
    if counts["train"] == 0:
        sizes = " ".join(f"{k}={v}" for k, v in counts.items())
        if split_file is not None:
            hint = (f"split file {split_file.name} has no train id matching a record id: check the ids "
                    "(--id-normalizer strip-tt or digits)")
        elif cfg.split_col is not None:
            hint = f"--split-col {cfg.split_col!r} has no train row"
        else:
            hint = "give --split-file, --split-col or --split-seed N (with --split-ratios 0.7,0.1,0.2)"
        limit = f" among the first {cfg.limit} (--limit)" if cfg.limit is not None else ""
        raise ValueError(f"no record{limit} is in the train split ({sizes}); {hint}")
