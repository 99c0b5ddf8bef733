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
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extract.readers.finish import finish, resolve
from extract.readers.labels import check_separator, parse_label_cell, parse_onehot
from extract.readers.splits import parse_split_value
from extract.readers.text import numbered_lines, read_utf8
from extract.records import UNSPLIT, Dataset, Record

if TYPE_CHECKING:
    from extract.datasets import DatasetConfig

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
AUTO = "auto"  # --label-cols auto
# Words of column names that are never labels (--label-cols auto leaves such columns out even
# when their cells are 0/1): ids, titles, years, texts, images and paths, splits, links,
# dates, ratings and counts.
_NOT_LABEL_WORDS = frozenset({
    "id", "ids", "key", "uuid", "title", "name", "year", "text", "plot", "overview", "description",
    "summary", "synopsis", "caption", "image", "img", "poster", "path", "file", "filename", "split",
    "fold", "url", "uri", "link", "href", "date", "time", "timestamp", "rating", "ratings", "score",
    "vote", "votes", "runtime", "budget", "revenue", "popularity"})


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
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{table}:{n}: bad JSON line: {e}") from e
            if not isinstance(row, dict):
                raise ValueError(f"{table}:{n}: expected a JSON object per line")
            columns.update(dict.fromkeys(row))
            rows.append(row)
        return list(columns), rows
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns_list = list(reader.fieldnames or [])
    for row in reader:
        if limit is not None and len(rows) >= limit:
            break
        rows.append(row)
    return columns_list, rows


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
    name = table.parent.name if Path(cfg.path).is_dir() else table.stem
    return finish(cfg, name, records, report, resolve(cfg.split_file, base))
