"""Reader for any table of items: CSV/TSV (the csv module) or JSON lines, columns by flag.

Every column is optional except what the flags name: no image column and no image folder
gives text-only records (image None); no text column gives image-only records (texts {}).

- ``--id-col``: the id column; unset, a column named ``id`` (any case) or else the row number.
- ``--text-col name=column`` (or just ``column``): one text field per flag.
- ``--image-col`` (a path, relative to ``--image-dir`` or the table's folder) or
  ``--image-dir`` + ``--image-pattern`` (``{id}.jpg``).
- ``--label-col`` (a list cell) or ``--label-cols`` (one 0/1 column per label, named by
  the column; ``auto`` takes every unused column whose cells are all 0 or 1 and whose name
  is not an obvious non-label: id, title, year, text, image, path, split, url, date,
  rating, count...). A joined column that never holds ``--label-sep`` but does hold
  ``;``, ``,`` or ``/`` is refused with the separator to pass.
- ``--split-col`` (train/dev/test/val/..., empty = no split) or a split file / seed.

A CSV/TSV must be rectangular with one name per column: a duplicated column name, or a row
with more or fewer fields than the header, is refused with the file and line (the csv
module would keep the last duplicate and pad or drop fields silently). Cells may be of any
size. An ``--image-dir`` that is not a folder, or image paths none of which exists, is
refused: that is a wrong path, never data.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extract.readers.finish import finish, resolve
from extract.readers.labels import check_separator, parse_label_cell, parse_onehot
from extract.readers.splits import parse_split_value
from extract.readers.text import json_line, numbered_lines, read_utf8
from extract.dataset_config import AUTO  # --label-cols auto (defined with DatasetConfig)
from extract.records import UNSPLIT, Dataset, Record

if TYPE_CHECKING:
    from extract.dataset_config import DatasetConfig

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
# Words of column names that are never labels (--label-cols auto leaves such columns out even
# when their cells are 0/1): ids, titles, years, texts, images and paths, splits, links,
# dates, ratings and counts.
_NOT_LABEL_WORDS = frozenset({
    "id", "ids", "key", "uuid", "title", "name", "year", "text", "plot", "overview", "description",
    "summary", "synopsis", "caption", "image", "img", "poster", "path", "file", "filename", "split",
    "fold", "url", "uri", "link", "href", "date", "time", "timestamp", "rating", "ratings", "score",
    "vote", "votes", "runtime", "budget", "revenue", "popularity"})
# The csv module refuses cells over 128 KiB by default; a long plot or an embedded document
# is data, so allow any cell a C long can count (2**31 - 1 also fits a 32-bit long).
_FIELD_LIMIT = 2**31 - 1


def find_table(path: Path, name: str | None = None) -> Path:
    """The table file: ``path`` itself, ``path/name`` (a preset names it), or the one
    CSV/TSV/JSONL file inside a folder."""
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"table {path} not found (--data)")
    if name is not None:
        if not (path / name).is_file():
            raise FileNotFoundError(f"table {path / name} not found: --data {path} should hold {name}")
        return path / name
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    if len(found) != 1:
        raise ValueError(f"--data {path} holds {len(found)} table files {[p.name for p in found]}; "
                         f"expected exactly one of {list(TABLE_SUFFIXES)}: pass the file itself")
    return found[0]


def read_rows(table: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a whole CSV/TSV or JSONL file (side files: extract.readers.side)."""
    return _rows(table, None)


def _rows(table: Path, limit: int | None) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of a CSV/TSV or JSONL file, at most ``limit`` rows."""
    rows: list[dict[str, Any]] = []
    text = read_utf8(table, "--data")  # a BOM (Excel writes one) is dropped for CSV and JSONL alike
    if table.suffix.lower() == ".jsonl":
        columns: dict[str, None] = {}
        for n, line in numbered_lines(text):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            row = json_line(line, f"{table}:{n}")
            if not isinstance(row, dict):
                raise ValueError(f"{table}:{n}: expected a JSON object per line")
            columns.update(dict.fromkeys(row))
            rows.append(row)
        return list(columns), rows
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns_list = list(reader.fieldnames or [])
        _refuse_duplicate_columns(columns_list, table)
        for row in reader:
            if limit is not None and len(rows) >= limit:
                break
            _refuse_ragged(row, len(columns_list), f"{table}:{reader.line_num}", delimiter)
            rows.append(row)
    except csv.Error as e:  # e.g. a NUL byte or an unclosed quote at the end of the file
        raise ValueError(f"{table}:{reader.line_num}: not a readable CSV row ({e}); fix the file") from None
    return columns_list, rows


def _refuse_duplicate_columns(columns: list[str], table: Path) -> None:
    """One name per column: csv.DictReader would keep only the last of two equal names."""
    dups = [c for c, n in Counter(columns).items() if n > 1 and c.strip()]  # unnamed columns are never chosen
    if dups:
        raise ValueError(f"{table}: the header names columns {dups} more than once; rename them so each "
                         "column has its own name")


def _refuse_ragged(row: dict[Any, Any], expected: int, where: str, delimiter: str) -> None:
    """A row with more or fewer fields than the header (DictReader files extras under the key
    None and fills missing fields with None)."""
    if None in row:
        got = expected + len(row[None])
    elif any(v is None for v in row.values()):
        got = sum(v is not None for v in row.values())
    else:
        return
    raise ValueError(f"{where}: {got} fields, expected {expected} as in the header; fix the row "
                     f"(quote a cell that holds {delimiter!r} or a line break)")


def _not_a_label(column: str) -> bool:
    """A column name that says it is not a label ("movieId", "release_year", "num_votes")."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", column)  # camelCase -> camel Case
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    return any(w in _NOT_LABEL_WORDS or w.startswith(("count", "num")) for w in words)


def _auto_label_cols(columns: list[str], rows: list[dict[str, Any]], used: set[str],
                     table: Path, report: dict[str, Any]) -> list[str]:
    """--label-cols auto: unused columns whose cells are all 0/1 and whose name is not a non-label."""
    taken, by_name, not_binary = [], [], []
    for c in columns:
        if c in used:
            continue
        if _not_a_label(c):
            by_name.append(c)
        elif rows and all(_cell(r, c).strip() in ("0", "1") for r in rows):
            taken.append(c)
        else:
            not_binary.append(c)
    report["label_cols"] = taken
    report["label_cols_left_out"] = {"by name": by_name, "not 0/1": not_binary}
    if not taken:
        raise ValueError(f"--label-cols auto found no 0/1 label columns in {table} (left out by name: "
                         f"{by_name}); name them with --label-cols a,b,c or use --label-col")
    return taken


def _text_spec(spec: str) -> tuple[str, str]:
    name, _, col = spec.partition("=")
    return (name.strip(), col.strip()) if col else (spec.strip(), spec.strip())


def _check(columns: list[str], wanted: dict[str, str | None], table: Path) -> None:
    for flag, col in wanted.items():
        if col is not None and col not in columns:
            raise ValueError(f"column {col!r} ({flag}) not in {table}; available columns: {columns}")


def _cell(row: dict[str, Any], col: str) -> str:
    v = row.get(col)
    return "" if v is None else str(v)


def read_table(cfg: "DatasetConfig") -> Dataset:
    """Read a CSV/TSV/JSONL table into a Dataset, columns chosen by the config."""
    table = find_table(Path(cfg.path), cfg.table)
    base = table.parent
    columns, rows = _rows(table, cfg.limit)
    if not rows:
        raise ValueError(f"table {table} has no rows{' (only a header)' if columns else ''}; check --data")
    report: dict[str, Any] = {"format": "table", "table": table.name, "notes": []}

    id_col = cfg.id_col or next((c for c in columns if c.lower() == "id"), None)
    report["ids_from_row_numbers"] = id_col is None
    if id_col is None:
        report["notes"].append("ids are row numbers (no --id-col and no 'id' column)")
    texts = [_text_spec(s) for s in cfg.text_cols]
    wanted: dict[str, str | None] = {"--id-col": id_col, "--image-col": cfg.image_col,
                                     "--label-col": cfg.label_col, "--split-col": cfg.split_col}
    wanted.update({f"--text-col {name}": col for name, col in texts})
    onehot = [c for c in cfg.label_cols if c != AUTO]
    wanted.update({"--label-cols": c for c in onehot})
    wanted.update({"--meta-col": c for c in cfg.meta_cols or []})
    _check(columns, wanted, table)
    used = {c for c in wanted.values() if c is not None}
    if AUTO in cfg.label_cols:
        onehot = _auto_label_cols(columns, rows, used, table, report)
        used.update(onehot)
    if cfg.label_col is not None:
        check_separator([r.get(cfg.label_col) for r in rows], cfg.label_sep,
                        f"{table}: --label-col {cfg.label_col!r}")
    meta_cols = cfg.meta_cols if cfg.meta_cols is not None else [c for c in columns if c not in used]
    image_dir = resolve(cfg.image_dir, base)
    if image_dir is not None and not image_dir.is_dir():
        what = "is not a folder" if image_dir.exists() else "not found"
        looked = "" if image_dir == cfg.image_dir else f" (looked for {image_dir})"
        raise FileNotFoundError(f"--image-dir {cfg.image_dir} {what}{looked}; give the folder of the images")

    records = []
    for n, row in enumerate(rows):
        where = f"{table} row {n + 1}"
        rid = _cell(row, id_col).strip() if id_col else str(n)
        if not rid:
            raise ValueError(f"{where}: empty id in column {id_col!r} (--id-col)")
        image: Path | None = None
        if cfg.image_col is not None:
            cell = _cell(row, cfg.image_col).strip()
            image = (image_dir or base) / cell if cell else None
        elif image_dir is not None:
            image = image_dir / cfg.image_pattern.format(id=rid)
        if cfg.label_col is not None:
            labels = parse_label_cell(row.get(cfg.label_col), cfg.label_sep, where)
        else:
            labels = [c for c in onehot if parse_onehot(row.get(c), c, where)]
        split = parse_split_value(row.get(cfg.split_col), where) if cfg.split_col else UNSPLIT
        records.append(Record(id=rid, image=image, texts={name: _cell(row, col) for name, col in texts},
                              labels=labels, split=split, meta={c: row.get(c) for c in meta_cols}))
    _refuse_no_image_found(records, cfg, image_dir or base)
    name = table.parent.name if Path(cfg.path).is_dir() else table.stem
    return finish(cfg, name, records, report, resolve(cfg.split_file, base))


def _refuse_no_image_found(records: list[Record], cfg: "DatasetConfig", folder: Path) -> None:
    """Image paths of which not one exists mean a wrong --image-dir/--image-col/--image-pattern:
    extracting would only mask every row as image_file_missing."""
    images = [r.image for r in records if r.image is not None]
    if not images or any(p.exists() for p in images):
        return
    how = (f"--image-col {cfg.image_col!r}" if cfg.image_col is not None
           else f"--image-pattern {cfg.image_pattern!r}")
    raise FileNotFoundError(f"none of the {len(images)} image files named by {how} exists in {folder} "
                            f"(e.g. {images[0]}); check --image-dir, {how} and the table's folder")
