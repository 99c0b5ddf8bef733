"""Split assignment shared by every reader: split values, split files, id normalisers,
and a seeded multi-label stratified split.

The stratified split is iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011,
"On the Stratification of Multi-Label Data", ECML PKDD, Algorithm 1): take the label with
the fewest unassigned examples, give each of its examples to the split that still wants
that label most (ties: the split that wants most examples, then a seeded coin), repeat.
No well-kept package for it is a dependency here, so it is written out below.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from extract.readers.text import read_utf8
from extract.records import SPLITS, UNSPLIT

# Spellings of split names in the wild -> our names.
_SPLIT_ALIASES = {
    "train": "train", "training": "train", "trn": "train",
    "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev",
    "test": "test", "tst": "test", "testing": "test",
    "none": UNSPLIT, "": UNSPLIT, "unsplit": UNSPLIT,
}


def _strip_tt(s: str) -> str:
    s = s.strip()
    return s[2:] if s[:2].lower() == "tt" else s


def _digits(s: str) -> str:
    d = "".join(c for c in s if c.isdigit())
    return str(int(d)) if d else s.strip()


# Id normalisers: applied to record ids AND split-file ids before matching (record ids stay as read).
NORMALIZERS: dict[str, Callable[[str], str]] = {
    "strip-tt": _strip_tt,  # "tt0086425" -> "0086425" (IMDb ids vs MM-IMDb split ids)
    "digits": _digits,      # "tt0086425", "0086425", "86425" -> "86425"
}


def get_normalizer(name: str | None) -> Callable[[str], str]:
    if name is None:
        return lambda s: s.strip()
    if name not in NORMALIZERS:
        raise ValueError(f"Unknown id normaliser {name!r} (--id-normalizer); choose from {sorted(NORMALIZERS)}")
    return NORMALIZERS[name]


def parse_split_value(value: object, where: str) -> str:
    """Our split name for one split-column cell; unknown values are an error."""
    text = "" if value is None else str(value).strip().lower()
    if text not in _SPLIT_ALIASES:
        raise ValueError(f"{where}: unknown split value {value!r}; expected one of "
                         f"{sorted(k for k in _SPLIT_ALIASES if k)} or empty")
    return _SPLIT_ALIASES[text]


def split_from_name(name: str) -> str:
    """The split a file is named after ("train.jsonl" -> "train", "val" -> "dev"); UNSPLIT otherwise."""
    split = _SPLIT_ALIASES.get(Path(name).stem.lower(), UNSPLIT)
    return split if split in SPLITS else UNSPLIT


def read_split_file(path: Path, normalize: Callable[[str], str]) -> dict[str, str]:
    """{normalised id: split} from a JSON file {"train": [...], "dev": [...], "test": [...]}."""
    try:
        data = json.loads(read_utf8(path, "--split-file"))
    except FileNotFoundError:
        raise FileNotFoundError(f"split file {path} not found (--split-file)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"split file {path} is not valid JSON: {e} (--split-file)") from e
    if not isinstance(data, dict):
        raise ValueError(f"split file {path} must hold a JSON object "
                         '{"train": [...], "dev": [...], "test": [...]} (--split-file)')
    out: dict[str, str] = {}
    for key, ids in data.items():
        split = parse_split_value(key, f"split file {path}")
        if not isinstance(ids, list):
            raise ValueError(f"split file {path}: {key!r} must map to a list of ids")
        for raw in ids:
            k = normalize(str(raw))
            if k in out and out[k] != split:
                raise ValueError(f"split file {path}: id {raw!r} is in both {out[k]!r} and {split!r}")
            out[k] = split
    return out


def assign_from_file(ids: list[str], split_of: dict[str, str],
                     normalize: Callable[[str], str]) -> tuple[list[str], dict[str, int]]:
    """Split per id (UNSPLIT when absent) and, per split, how many split-file ids matched no record."""
    keys = [normalize(i) for i in ids]
    seen = set(keys)
    not_found = {s: 0 for s in SPLITS}
    for k, s in split_of.items():
        if k not in seen and s in not_found:
            not_found[s] += 1
    return [split_of.get(k, UNSPLIT) for k in keys], not_found


def stratified_split(y: np.ndarray, ratios: tuple[float, float, float], seed: int) -> list[str]:
    """Seeded iterative stratification of a (N, C) 0/1 label matrix into train/dev/test."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=bool).reshape(len(y), -1)  # (N, C)
    n = len(y)
    r = np.asarray(ratios, dtype=float)  # (3,)
    want_size = r * n  # (3,) examples each split still wants
    want_label = r[:, None] * y.sum(0)[None, :]  # (3, C) positives of each label each split still wants
    order = rng.permutation(n)  # examples are visited in a seeded random order
    out = np.full(n, -1)
    jitter = rng.random(3)  # fixed per seed: breaks exact ties without favouring train

    def give(i: int, scores: np.ndarray) -> None:
        best = np.flatnonzero(scores == scores.max())
        if len(best) > 1:
            by_size = want_size[best]
            best = best[by_size == by_size.max()]
        k = best[np.argmax(jitter[best])]
        out[i] = k
        want_size[k] -= 1
        want_label[k] -= y[i]

    left = y.copy()  # (N, C) positives not yet assigned
    while left.any():
        counts = left.sum(0)
        label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for i in order[left[order, label]]:
            give(int(i), want_label[:, label].copy())
            left[i] = False
    for i in order[out[order] < 0]:  # examples without any label
        give(int(i), want_size.copy())
    return [SPLITS[k] for k in out]
