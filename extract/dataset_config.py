"""`DatasetConfig`: where a data set is and how to read it (every data-set flag, one field each).

It lives apart from the readers (extract/readers/*) and the dispatcher (extract/datasets.py):
both import it, and it imports neither (only the label-set and id-normaliser registries, leaf
modules), so there is no import circle (tests/test_layering.py). The constants the readers
and the config both check (format names, --plot choices, --label-cols auto) are defined here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extract.readers.labels import LABEL_SETS
from extract.readers.splits import NORMALIZERS

FORMATS = ("mmimdb", "jsonl", "table")  # the READERS names (extract.datasets asserts they agree)
PLOT_CHOICES = ("longest", "first", "all")  # --plot: which MM-IMDb plot summary (readers.mmimdb_raw)
AUTO = "auto"  # --label-cols auto (readers.table)

PRESETS: dict[str, dict[str, Any]] = {
    # ../shared/data/mmimdb-poster-subset: movies.csv (Id tt0086425, Genre "['Comedy', 'Drama']",
    # one 0/1 column per genre, Overview), posters/<Id>.jpg, mmimdb_split.json of 7-digit ids.
    "poster-subset": {
        "format": "table",
        "table": "movies.csv",  # by name: the folder also holds metadata/metadata.csv and may hold more
        "id_col": "Id",
        "text_cols": ["plot=Overview"],
        "image_dir": "posters",
        "image_pattern": "{id}.jpg",
        "label_col": "Genre",
        "labels": "mmimdb23",
        "split_file": "mmimdb_split.json",
        "id_normalizer": "strip-tt",
        "meta_cols": [],  # the other columns are the one-hot copy of Genre
        # Real metadata (director, cast, keywords... and a longer plot), joined by Id when the
        # folder has it (a preset-named file that is absent is skipped, and the run says so)
        "meta_file": "metadata/metadata.csv",
    },
}

# A preset value is skipped when the user gave one of these alternatives to it.
_PRESET_YIELDS = {"label_col": ("label_cols",), "label_cols": ("label_col",),
                  "split_file": ("split_col", "split_seed"), "split_col": ("split_file", "split_seed")}

AUTO_LABELS = "auto"  # --labels auto: resolved per reader by _resolve_labels


def _as_list(value: Any) -> list[str]:
    """A list flag given as a list, as one comma-separated string, or both (a repeated CLI flag
    whose values are comma-separated: ``--label-cols a,b --label-cols c``)."""
    items = [value] if isinstance(value, str) else value
    return [v.strip() for item in items for v in str(item).split(",") if v.strip()]


def field_defaults(cfg: Any) -> dict[str, Any]:
    """Default value of every dataclass field that has one."""
    return {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cfg) if f.name != "path"}


@dataclass
class DatasetConfig:
    """Where a data set is and how to read it; validated on creation, errors name the flag."""

    path: Path  # data set root folder or file (--data)
    format: str = "auto"  # a READERS name, or auto: detect from the files
    preset: str | None = None  # a PRESETS name; fills every option left at its default (and not
    # replaced by an alternative the user gave: --label-cols stops a preset's --label-col)
    plot: str = "longest"  # MM-IMDb has several plot summaries per movie: longest | first | all
    # auto: "data" for a table (its own names), "mmimdb23" for the MM-IMDb layouts (and the
    # poster-subset preset); mmimdb23: GMU's 23 genres (others dropped, counted); data: every name found
    labels: str = AUTO_LABELS
    drop_labels: list[str] = field(default_factory=list)  # names removed everywhere (--drop-label)
    table: str | None = None  # table file inside a --data folder (presets name it); None: the only one
    id_col: str | None = None  # unset: a column named "id" (any case), else the row number
    text_cols: list[str] = field(default_factory=list)  # "column" or "name=column", one per text field
    image_col: str | None = None  # image path per row, relative to image_dir or the table's folder
    image_dir: Path | None = None  # folder of images, relative paths resolve against the data folder
    image_pattern: str = "{id}.jpg"  # file name in image_dir when there is no image column
    label_col: str | None = None  # one list cell: JSON list, Python list text, or label_sep-joined
    label_cols: list[str] = field(default_factory=list)  # one-hot 0/1 columns by name, or ["auto"]
    label_sep: str = "|"
    split_col: str | None = None  # train/dev/test (val, validation, ... accepted); empty = no split
    split_file: Path | None = None  # JSON {"train": [ids], "dev": [...], "test": [...]}
    id_normalizer: str | None = None  # a NORMALIZERS name applied to ids before split-file matching
    split_seed: int | None = None  # seeded stratified split, when there is no split column or file
    split_ratios: tuple[float, float, float] = (0.6, 0.1, 0.3)  # train/dev/test for split_seed
    limit: int | None = None  # keep only the first N records (quick looks; seeded splits use these N)
    meta_cols: list[str] | None = None  # table columns kept in Record.meta; None: every unused column
    meta_file: Path | None = None  # metadata table joined by id (extract.readers.side)
    meta_fields: list[str] | None = None  # --meta-cols: its columns kept as metadata; None: all but id/*_src/text
    meta_text_cols: list[str] = field(default_factory=lambda: ["plot"])  # its columns joined as text fields
    text_files: list[Path] = field(default_factory=list)  # tables of extra text fields by id (`ocr` output)
    # True when the preset (not the user) named meta_file: absent is then skipped, not refused
    meta_file_optional: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ValueError(f"Unknown preset {self.preset!r} (--preset); choose from {list_presets()}")
            defaults = field_defaults(self)
            given = {k for k, v in defaults.items() if getattr(self, k) != v}
            for key, value in PRESETS[self.preset].items():
                if key not in given and not given & set(_PRESET_YIELDS.get(key, ())):
                    setattr(self, key, value)
                    self.meta_file_optional |= key == "meta_file"
        self.path = Path(self.path)
        self.image_dir = Path(self.image_dir) if self.image_dir is not None else None
        self.split_file = Path(self.split_file) if self.split_file is not None else None
        self.text_cols = _as_list(self.text_cols)
        self.label_cols = _as_list(self.label_cols)
        drop = [self.drop_labels] if isinstance(self.drop_labels, str) else self.drop_labels
        self.drop_labels = [str(n) for n in drop]  # label names may hold commas: never split
        self.meta_cols = _as_list(self.meta_cols) if self.meta_cols is not None else None
        self.meta_file = Path(self.meta_file) if self.meta_file is not None else None
        self.meta_fields = _as_list(self.meta_fields) if self.meta_fields is not None else None
        self.meta_text_cols = _as_list(self.meta_text_cols)
        self.text_files = [Path(f) for f in ([self.text_files] if isinstance(self.text_files, (str, Path))
                                             else self.text_files)]
        self._validate()

    def _validate(self) -> None:
        if self.meta_fields is not None and self.meta_file is None:
            raise ValueError("--meta-cols chooses columns of --meta-file; give --meta-file too")
        if self.meta_fields is not None and not self.meta_fields:
            raise ValueError("--meta-cols needs at least one column name")
        choices = {"--format": (self.format, ["auto", *FORMATS]), "--plot": (self.plot, list(PLOT_CHOICES)),
                   "--labels": (self.labels, [AUTO_LABELS, *LABEL_SETS])}
        for flag, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"Unknown {flag} {value!r}; choose from {allowed}")
        if self.id_normalizer is not None and self.id_normalizer not in NORMALIZERS:
            raise ValueError(f"Unknown --id-normalizer {self.id_normalizer!r}; choose from {sorted(NORMALIZERS)}")
        if self.label_col is not None and self.label_cols:
            raise ValueError("give --label-col (one list column) or --label-cols (0/1 columns), not both")
        if AUTO in self.label_cols and len(self.label_cols) > 1:
            raise ValueError(f"--label-cols {AUTO} takes no other column names; got {self.label_cols}")
        if not self.label_sep:
            raise ValueError("--label-sep must not be empty")
        if "{id}" not in self.image_pattern:
            raise ValueError(f"--image-pattern {self.image_pattern!r} must contain {{id}}, e.g. '{{id}}.jpg'")
        sources = [f for f, v in (("--split-col", self.split_col), ("--split-file", self.split_file),
                                  ("--split-seed", self.split_seed)) if v is not None]
        if len(sources) > 1:
            raise ValueError(f"give one split source, not {' and '.join(sources)}")
        self.split_ratios = tuple(float(r) for r in self.split_ratios)  # type: ignore[assignment]
        r = self.split_ratios
        if len(r) != 3 or min(r) < 0 or r[0] <= 0 or abs(sum(r) - 1) > 1e-6:
            raise ValueError(f"--split-ratios {list(r)} must be three train/dev/test fractions >= 0 "
                             "summing to 1, with train > 0")
        if r != field_defaults(self)["split_ratios"] and self.split_seed is None:
            raise ValueError("--split-ratios applies to a seeded split only: add --split-seed N")
        if any(not n.strip() for n in self.drop_labels):
            raise ValueError("--drop-label needs a label name")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit {self.limit} must be at least 1")
        names = [n.partition("=")[0].strip() if "=" in n else n for n in self.text_cols]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"--text-col fields {names} must be non-empty and distinct")


def list_presets() -> list[str]:
    return sorted(PRESETS)
