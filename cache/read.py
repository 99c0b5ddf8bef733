"""Reading caches: the header check (open_info), the full check (verify), folder listings.

Readers check the attr digests on every open (cheap) and the digest of every dataset they
read (`check_arrays`, shared by `verify` and `cache.features.load_features`, so a refusal
reads the same everywhere), plus structure: unique ids, known splits, 0/1 labels, NaN
exactly in the rows marked missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from cache.shards import pid_alive, tmp_pid
from cache.store import (CHECKED_ATTRS, FORMAT_VERSION, REQUIRED_ATTRS, REQUIRED_DATASETS, SPLITS,
                         CacheError, attrs_digest, dataset_digest, decode_attr, overall_checksum)

# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


@dataclass
class CacheInfo:
    path: Path
    attrs: dict[str, Any]
    n: int
    dim: int
    token_shape: tuple[int, int] | None
    dtype: str
    datasets: tuple[str, ...] = field(default=REQUIRED_DATASETS)

    @property
    def label_names(self) -> list[str]:
        return list(self.attrs["label_names"])


def _rerun_hint(path: Path, attrs: dict[str, Any] | None = None) -> str:
    cmd = (attrs or {}).get("command")
    return f"rerun: {cmd}" if cmd else "rerun the `extract` command that made it"


def open_info(path: str | Path) -> CacheInfo:
    """Read and check a cache's header and attr checksums; refuses partial, truncated,
    altered or foreign files. Datasets are not read (see verify / check_arrays)."""
    path = Path(path)
    if path.name.endswith(".partial") or ".h5.tmp-" in path.name:
        raise CacheError(f"{path} is an unfinished extraction, not a cache; rerun extract to finish it")
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        if partial.exists():
            raise CacheError(f"{path} is not finished ({partial} holds a resumable run); "
                             "rerun the same extract command to complete it")
        raise FileNotFoundError(f"cache file {path} does not exist; run `extract` first or check the path")
    _check_is_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: decode_attr(k, v) for k, v in f.attrs.items()}
            if not attrs.get("complete"):
                raise CacheError(f"{path} is incomplete; {_rerun_hint(path, attrs)}")
            if attrs.get("format_version") != FORMAT_VERSION:
                raise CacheError(f"{path} has cache format {attrs.get('format_version')}, this mmgenre "
                                 f"reads {FORMAT_VERSION}; {_rerun_hint(path, attrs)}")
            for name in REQUIRED_ATTRS:
                if name not in attrs:
                    raise CacheError(f"{path} has no '{name}' attr (damaged, or not written by mmgenre "
                                     f"extract); {_rerun_hint(path, attrs)}")
            for name in REQUIRED_DATASETS:
                if name not in f:
                    raise CacheError(f"{path} has no '{name}' dataset; {_rerun_hint(path, attrs)}")
            n, dim = f["features"].shape
            datasets = tuple(sorted(f.keys()))
            for name in datasets:  # label_extras.* have a row per label, not per item
                if name != "extra_state" and not name.startswith("label_extras.") and f[name].shape[0] != n:
                    raise CacheError(f"{path}: '{name}' has {f[name].shape[0]} rows, features {n}; "
                                     f"the file is damaged; {_rerun_hint(path, attrs)}")
            tok = tuple(f["tokens"].shape[1:3]) if "tokens" in f else None
            dtype = str(f["features"].dtype)
    except CacheError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CacheError(f"{path} is truncated or corrupt ({type(e).__name__}: {' '.join(str(e).split())}); "
                         "delete it and rerun the extract command that made it") from None
    info = CacheInfo(path, attrs, n, dim, tok, dtype, datasets)
    _check_attr_sums(info)
    return info


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of every HDF5 file mmgenre writes


def _check_is_hdf5(path: Path) -> None:
    """Refuse a folder or a file that is not HDF5 at all (a CSV, a poster...) with its own
    line: "truncated or corrupt; delete it" is right only for a damaged cache, and would
    tell the user to delete their data."""
    if path.is_dir():
        raise CacheError(f"{path} is a folder; give a cache file (cache ls {path} lists them)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError:
        return  # unreadable: h5py's open below reports it
    if head != HDF5_SIGNATURE:
        what = "it is empty" if not head else "it does not start with the HDF5 signature"
        raise CacheError(f"{path} is not an HDF5 cache file ({what}); give a .h5 file written by "
                         "`mmgenre extract` (cache ls <folder> lists them)")


def _altered(info: CacheInfo, what: str) -> CacheError:
    return CacheError(f"{info.path}: checksum mismatch in {what} (file altered or damaged); "
                      f"delete it and {_rerun_hint(info.path, info.attrs)}")


def _check_attr_sums(info: CacheInfo) -> None:
    """The cheap part of the integrity check: the digests' own digest, the dataset list, attrs."""
    sums = info.attrs.get("checksums")
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise CacheError(f"{info.path} has no valid 'checksums' attr; delete it and "
                         f"{_rerun_hint(info.path, info.attrs)}")
    if overall_checksum(sums) != info.attrs.get("checksum"):
        raise _altered(info, "the 'checksum' attr")
    if set(sums) - {"attrs"} != set(info.datasets):
        odd = sorted(set(sums) - {"attrs"} ^ set(info.datasets))
        raise _altered(info, f"the dataset list (added or removed: {odd})")
    if attrs_digest(info.attrs) != sums.get("attrs"):
        raise _altered(info, f"attrs {'/'.join(CHECKED_ATTRS)}")


def read_arrays(info: CacheInfo, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Datasets as stored (strings as str objects); a read failure is one CacheError line."""
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(info.path, "r") as f:
            for k in names:
                out[k] = f[k].asstr()[...] if h5py.check_string_dtype(f[k].dtype) else f[k][...]
    except (OSError, KeyError, ValueError) as e:
        raise CacheError(f"{info.path} is truncated or corrupt (reading data: {' '.join(str(e).split())}); "
                         f"delete it and {_rerun_hint(info.path, info.attrs)}") from None
    return out


def check_arrays(info: CacheInfo, arrays: dict[str, np.ndarray]) -> None:
    """Checksums and structure of the datasets read from info.path: the one check behind
    `cache verify`, train-head, sweep and predict, so all refuse with the same line."""
    sums = info.attrs["checksums"]
    for k, a in arrays.items():
        if dataset_digest(a) != sums.get(k):
            raise _altered(info, f"'{k}'")
    path, hint = info.path, _rerun_hint(info.path, info.attrs)
    if "ids" in arrays:
        ids = arrays["ids"]
        uniq, counts = np.unique(ids.astype(str), return_counts=True)
        if len(uniq) != len(ids):
            dup = uniq[counts > 1]
            raise CacheError(f"{path}: {len(dup)} ids appear more than once (e.g. {str(dup[0])!r}); ids must be "
                             f"unique; {hint}")
    if "split" in arrays:
        odd = sorted(set(arrays["split"].tolist()) - set(SPLITS))
        if odd:
            raise CacheError(f"{path}: unknown split values {odd[:5]} (expected {list(SPLITS)}); {hint}")
    if "labels" in arrays:
        labels = arrays["labels"]
        if labels.ndim != 2 or labels.shape[1] != len(info.label_names):
            raise CacheError(f"{path}: labels have shape {labels.shape} but there are "
                             f"{len(info.label_names)} label names; {hint}")
        if labels.size and labels.max() > 1:
            raise CacheError(f"{path}: labels hold values other than 0/1; {hint}")
    if "features" in arrays and "present" in arrays:
        finite = np.isfinite(arrays["features"]).all(axis=1)
        present = arrays["present"].astype(bool)
        ids = arrays.get("ids")
        for rows, what in ((present & ~finite, "rows marked present have NaN/inf features"),
                           (~present & finite, "rows marked missing have finite features")):
            bad = np.flatnonzero(rows)
            if bad.size:
                shown = ", ".join(str(ids[i]) if ids is not None else f"row {i}" for i in bad[:5])
                more = f" and {bad.size - 5} more" if bad.size > 5 else ""
                fix = ("the encoder produced non-finite values; re-extract (--dtype float32 if float16 "
                       "overflowed)" if "NaN" in what else f"the missing-mask is damaged; {hint}")
                raise CacheError(f"{path}: {bad.size} {what} (ids {shown}{more}); {fix}")
    if "tokens" in arrays and "token_mask" in arrays:
        if arrays["token_mask"].shape != arrays["tokens"].shape[:2]:
            raise CacheError(f"{path}: token_mask shape {arrays['token_mask'].shape} does not fit tokens "
                             f"{arrays['tokens'].shape}; {hint}")


def verify(path: str | Path) -> CacheInfo:
    """Full check: header, every dataset readable, every checksum, structure (check_arrays)."""
    info = open_info(path)
    check_arrays(info, read_arrays(info, info.datasets))
    return info


def split_counts(info: CacheInfo) -> dict[str, int]:
    """Rows per split value (train/dev/test/none), read from the `split` dataset."""
    values, counts = np.unique(read_arrays(info, ["split"])["split"].astype(str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


class Entry(NamedTuple):
    """A file in a cache folder that is not a usable cache: what it is and what to do."""
    path: Path
    reason: str
    kind: str = "UNUSABLE"  # UNUSABLE | UNFINISHED | LEFTOVER | STRAY TEMP


def list_caches(folder: str | Path) -> list[CacheInfo | Entry]:
    """Every *.h5 in a folder (its info, or an Entry saying why it does not open), every
    unfinished run and every leftover of a killed run, sorted by name."""
    folder = Path(folder)
    out: list[CacheInfo | Entry] = []
    for p in folder.glob("*.h5"):
        try:
            out.append(open_info(p))
        except (CacheError, FileNotFoundError) as e:
            out.append(Entry(p, str(e)))
    for p in folder.glob("*.h5.partial"):
        final = p.with_name(p.name[: -len(".partial")])
        if any(isinstance(i, CacheInfo) and i.path == final for i in out):
            out.append(Entry(p, f"left by a finished run ({final.name} is complete); safe to delete, the "
                                "next extract of it removes it", "LEFTOVER"))
        else:
            out.append(Entry(p, "unfinished: rerun the same extract command to resume", "UNFINISHED"))
    for p in folder.glob("*.h5.tmp-*"):
        pid = tmp_pid(p)
        if pid is None:
            continue
        if pid_alive(pid):
            out.append(Entry(p, f"being written by process {pid} (or left by a killed one whose pid is "
                                "reused); leave it while that runs", "STRAY TEMP"))
        else:
            out.append(Entry(p, f"left by a killed run (process {pid} is gone); delete it, or rerun the "
                                "extract command, which removes it", "STRAY TEMP"))
    return sorted(out, key=lambda r: r.path.name)
