"""Label handling shared by every reader: parse label cells, fix name quirks, apply a label set.

Labels are always names (never column indices). Two label sets exist:
``mmimdb23`` keeps the 23 genres of the GMU paper (Arevalo et al. 2017, arXiv:1702.01992,
Table 1) in that order and drops every other name, counting it; ``data`` keeps every name
seen on at least one record, sorted.

Whatever the set, a name is first stripped and put in Unicode NFC (so "Comédie" typed with
a combining accent and "Comédie" are one label), then matched to a GMU genre name ignoring
case and every character other than a-z and 0-9 ("drama", "Sci-fi", "SciFi", "film noir"),
or to an alias ("Science Fiction" -> "Sci-Fi"). Both changes are counted and printed.
"""
from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections import Counter
from typing import Any, NamedTuple

from extract.records import MMIMDB_GENRES, Record

LABEL_SETS = ("mmimdb23", "data")

# Spellings seen in IMDb dumps and Kaggle copies, keyed by _key(name): "Sci-fi", "SciFi",
# "Science Fiction", "Film Noir", "film-noir" all name one GMU genre.
_ALIASES = {"sciencefiction": "Sci-Fi"}
_CANONICAL = {re.sub(r"[^a-z0-9]", "", g.lower()): g for g in MMIMDB_GENRES}

# One-hot cell values; anything else is a user error (a text column given by mistake).
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f", ""}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _nfc(name: str) -> str:
    """The name stripped and in Unicode NFC (composed accents), the form every label is kept in."""
    return unicodedata.normalize("NFC", name.strip())


def canonical_label(name: str) -> str:
    """Map spelling variants of a GMU genre ("Sci-fi", "Film Noir") to its GMU name; else
    strip and NFC-normalise."""
    name = _nfc(name)
    k = _key(name)
    return _CANONICAL.get(k) or _ALIASES.get(k) or name


def parse_label_cell(value: Any, sep: str, where: str) -> list[str]:
    """Label names from one cell: a list, a JSON list, a Python-literal list, or ``sep``-joined text."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip()
        if not text:
            return []
        if text.startswith("["):
            items = _parse_list_literal(text, where)
        else:
            items = text.split(sep)
    return [str(i).strip() for i in items if i is not None and str(i).strip()]


def _parse_list_literal(text: str, where: str) -> list[Any]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{where}: cannot parse label list {text!r} ({e}); "
                             "write it as a JSON list, a Python list, or names joined by --label-sep") from e
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where}: label cell {text!r} is not a list")
    return list(items)


def parse_onehot(value: Any, column: str, where: str) -> bool:
    """True/False from a 0/1 cell of a one-hot label column."""
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: one-hot label column {column!r} holds {value!r}; expected 0/1 "
                     "(use --label-col for a list-valued column)")


class LabelSet(NamedTuple):
    """What apply_label_set did (records per name in every dict)."""

    names: list[str]  # the label names, in column order
    dropped: dict[str, int]  # names outside the label set
    removed: dict[str, int]  # names removed by --drop-label (0: not in the data)
    renamed: dict[str, dict[str, Any]]  # {"drama": {"to": "Drama", "records": 3}}: matched to a GMU name
    normalised: dict[str, int]  # NFC names that some records wrote in another Unicode form


def _canonicalise(records: list[Record]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Put every record's labels in canonical form, unique; count renames and NFC changes."""
    renamed: Counter[tuple[str, str]] = Counter()
    normalised: Counter[str] = Counter()
    for r in records:
        seen_renames, seen_nfc, labels = set(), set(), []
        for raw in r.labels:
            nfc = _nfc(raw)
            canon = canonical_label(nfc)
            if nfc != raw.strip():
                seen_nfc.add(nfc)
            if canon != nfc:
                seen_renames.add((nfc, canon))
            labels.append(canon)
        r.labels = list(dict.fromkeys(labels))
        renamed.update(seen_renames)
        normalised.update(seen_nfc)
    return ({old: {"to": new, "records": n} for (old, new), n in sorted(renamed.items())},
            dict(sorted(normalised.items())))


def apply_label_set(records: list[Record], label_set: str,
                    drop: list[str] | tuple[str, ...] = ()) -> LabelSet:
    """Canonicalise every record's labels in place, remove the ``drop`` names, drop names outside the set.

    Returns the names plus records per name dropped by the label set, removed by ``drop``
    (--drop-label; 0 for a name the data never has), renamed to a GMU name, and put in NFC.
    Each record's labels end up unique and in label_names order.
    """
    if label_set not in LABEL_SETS:
        raise ValueError(f"Unknown label set {label_set!r} (--labels); choose from {list(LABEL_SETS)}")
    removed = {canonical_label(n): 0 for n in drop}
    renamed, normalised = _canonicalise(records)
    for r in records:
        for n in r.labels:
            if n in removed:
                removed[n] += 1
        r.labels = [n for n in r.labels if n not in removed]
    if label_set == "mmimdb23":
        names = [n for n in MMIMDB_GENRES if n not in removed]
    else:
        names = sorted({n for r in records for n in r.labels})
    index = {n: i for i, n in enumerate(names)}
    dropped: Counter[str] = Counter()
    for r in records:
        dropped.update(n for n in r.labels if n not in index)
        r.labels = sorted((n for n in r.labels if n in index), key=index.__getitem__)
    return LabelSet(names, dict(sorted(dropped.items())), removed, renamed, normalised)


# Separators people join labels with; one of these in the cells and never --label-sep means
# the flag is wrong, and splitting on it would make "Drama, War" one label named so.
LIKELY_SEPARATORS = (";", ",", "/")
# Separators that, in a column that does use --label-sep, mean some cells were joined another
# way ("Drama|War" here, "Drama, War" there). "/" is left out: it is part of real names
# ("Sci-Fi/Fantasy", "Action/Adventure").
MIXED_SEPARATORS = ("|", ";", ",")


def check_separator(cells: list[Any], sep: str, where: str) -> None:
    """Refuse a joined label column that never holds ``sep`` but does hold a likely separator,
    or that holds ``sep`` in some cells and another separator inside a name in others."""
    texts = [str(c).strip() for c in cells if c is not None and not isinstance(c, (list, tuple))]
    texts = [t for t in texts if t and not t.startswith("[")]  # list literals are parsed as lists
    if not texts:
        return
    with_sep = sum(sep in t for t in texts)
    if with_sep:
        _refuse_mixed(texts, sep, with_sep, where)
        return
    counts = {s: sum(s in t for t in texts) for s in LIKELY_SEPARATORS if s != sep}
    best = max(counts, key=counts.__getitem__)
    if counts[best]:
        example = next(t for t in texts if best in t)
        raise ValueError(f"{where}: no cell holds --label-sep {sep!r} but {counts[best]} hold {best!r} "
                         f"(e.g. {example!r}); pass --label-sep '{best}' (or write each cell as a "
                         f"JSON list if {best!r} is part of a label name)")


def _refuse_mixed(texts: list[str], sep: str, with_sep: int, where: str) -> None:
    """Refuse cells whose names (split on ``sep``) hold another separator: "Drama, War" would be one label."""
    bad = {s: [t for t in texts if any(s in part for part in t.split(sep))] for s in MIXED_SEPARATORS if s != sep}
    bad = {s: ts for s, ts in bad.items() if ts}
    if not bad:
        return
    held = ", ".join(f"{len(ts)} have {s!r} inside a name (e.g. {ts[0]!r})" for s, ts in bad.items())
    raise ValueError(f"{where}: {with_sep} of {len(texts)} cells hold --label-sep {sep!r} but {held}, which "
                     f"would become part of one label's name; join every label with {sep!r} (or write the "
                     "cells as JSON lists if that character is part of a label name)")
