"""One record type for every data set reader, and the loaded data set around it."""
from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "dev", "test")
# Records whose id is not in the split file get this split; they are kept in the cache
# (flagged) but never used for training or evaluation unless a user asks for it.
UNSPLIT = "none"

# The 23 genres of the GMU paper (Arevalo et al. 2017, arXiv:1702.01992, Table 1), by name.
MMIMDB_GENRES = [
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
    "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History",
    "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir",
]


# Unicode categories that draw nothing: separators (Zs, Zl, Zp), controls (Cc) and format
# characters (Cf: zero-width space, ZWNJ, ZWJ, byte-order mark, soft hyphen...). str.strip()
# keeps the Cf ones, so a plot of zero-width spaces would otherwise be encoded as a text.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def is_blank(text: str | None) -> bool:
    """True when a text shows nothing to a reader: empty, or only invisible characters."""
    return not text or all(unicodedata.category(c) in _INVISIBLE for c in text)


@dataclass
class Record:
    """One movie (or any item): an id, an optional image, named texts, label names, a split."""

    id: str
    image: Path | None  # None when the data set has no image for this item
    texts: dict[str, str]  # named text fields, e.g. {"plot": "..."}; "" when empty
    labels: list[str]  # label names (never column indices)
    split: str  # one of SPLITS or UNSPLIT
    # Metadata: raw reader values (MM-IMDb json, table --meta-col) or, joined from --meta-file,
    # field -> list of entity names (extract.readers.side.entity_list parses either)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """Records plus the label list and what the reader dropped or noticed on the way."""

    name: str
    records: list[Record]
    label_names: list[str]
    # Counters and notes from reading: dropped genres, unknown split ids, missing files, ...
    report: dict[str, Any] = field(default_factory=dict)
    # The reader options that change the records (plot choice, label set, ...), for the cache hash.
    options: dict[str, Any] = field(default_factory=dict)
    # Text fields joined from side files (--meta-file text columns, --text-file): hashed into
    # the caches that read them (side_fingerprint), not into fingerprint(), so joining them
    # leaves the names of the other caches alone.
    side_texts: set[str] = field(default_factory=set)
    meta_fields: list[str] = field(default_factory=list)  # the --meta-file fields, in file order

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for r in self.records:
            if r.id in seen:
                raise ValueError(f"duplicate id {r.id!r} in data set {self.name!r}; ids must be unique")
            seen.add(r.id)

    def split_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in (*SPLITS, UNSPLIT)}
        for r in self.records:
            counts[r.split] = counts.get(r.split, 0) + 1
        return counts

    def labels_without_train_positive(self) -> list[str]:
        """Label names with no positive example in the train split."""
        pos = {r_label for r in self.records if r.split == "train" for r_label in r.labels}
        return [n for n in self.label_names if n not in pos]

    def label_matrix(self) -> "list[list[int]]":
        index = {n: i for i, n in enumerate(self.label_names)}
        rows = []
        for r in self.records:
            row = [0] * len(self.label_names)
            for name in r.labels:
                row[index[name]] = 1
            rows.append(row)
        return rows

    def fingerprint(self) -> str:
        """Hash of everything in the data that changes features or labels.

        Ids, splits, labels, texts and, for images, the path name and file size (hashing
        every poster's bytes would cost a full read of the data set on every call).
        """
        h = hashlib.sha256()
        h.update(json.dumps([self.name, self.label_names, self.options], sort_keys=True).encode())
        for r in self.records:
            size = -1
            if r.image is not None:
                try:
                    size = r.image.stat().st_size
                except OSError:
                    size = -1
            texts = {k: v for k, v in r.texts.items() if k not in self.side_texts}
            item = [r.id, r.split, sorted(r.labels), texts, r.image.name if r.image else None, size]
            h.update(json.dumps(item, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def side_fingerprint(self, text_field: str | None = None, meta_fields: list[str] | None = None) -> str:
        """Hash of the side inputs one cache reads: a joined text field, or metadata fields."""
        h = hashlib.sha256()
        for r in self.records:
            item = [r.id, r.texts.get(text_field, "") if text_field else None,
                    {f: r.meta.get(f) for f in meta_fields or []}]
            h.update(json.dumps(item, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]
