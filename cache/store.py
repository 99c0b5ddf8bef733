"""HDF5 feature cache: the layout, naming by settings hash, digests, the file writer.

One file per (data set, modality, encoder config). Layout (see DESIGN.md):

    ids (N,) utf-8 | labels (N, C) uint8 | split (N,) utf-8 | features (N, D) float16/32
    present (N,) bool  -- False: missing/corrupt poster or empty text; features row is NaN
    tokens (N, T, Dt) + token_mask (N, T) bool   -- only with --tokens
    extra_state (bytes, uint8)                   -- e.g. the fitted TF-IDF vectorizer
    attrs: label_names, encoder, weights, preprocess, modality, dataset_fingerprint,
           complete, versions, created, command, config, missing, checksums, checksum, ...

Integrity: `checksums` (JSON) holds a sha256 per dataset plus one ("attrs") over the attrs
that change the numbers (CHECKED_ATTRS); `checksum` is a digest of `checksums`. The
digests are computed here for the writer and for every reader (cache/read.py), so they
cannot drift apart. Resumable extraction (batch files, lock, leftovers) is cache/shards.py.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# Format 2: checksums cover every dataset and CHECKED_ATTRS (1 covered features only).
FORMAT_VERSION = 2
STR = h5py.string_dtype("utf-8")
# Attrs that change what a head sees or what a reader trusts; their digest is part of the
# checksum. settings_hash (train-head's "up to date" check and run names), dataset (the run
# name and report) and missing (the counts `cache info` and refusals quote) are trusted by
# readers, so an edit to them must fail verification too.
CHECKED_ATTRS = ("label_names", "encoder", "weights", "preprocess", "options", "modality",
                 "text_field", "dataset_fingerprint", "settings_hash", "dataset", "missing")
REQUIRED_ATTRS = ("label_names", "encoder", "modality")
REQUIRED_DATASETS = ("ids", "labels", "split", "features", "present")
SPLITS = ("train", "dev", "test", "none")


JSON_ATTRS = ("label_names", "preprocess", "config", "versions", "missing", "report", "options", "checksums")  # attrs stored as JSON strings


class CacheError(ValueError):
    """A cache that is incomplete, truncated, corrupt or does not match what was asked."""


def settings_hash(settings: dict[str, Any]) -> str:
    """Hash of everything that changes the numbers; names the cache file."""
    blob = json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_filename(dataset: str, modality: str, encoder: str, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{dataset}-{modality}-{encoder}")
    return f"{safe}-{key}.h5"


def array_checksum(*arrays: np.ndarray) -> str:
    """Short digest of arrays' bytes (a data set fingerprint for synthetic caches)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def decode_attr(k: str, v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if k in JSON_ATTRS and isinstance(v, str):
        return json.loads(v)
    return v


# ---------------------------------------------------------------------------------------
# Digests: one function for the writer and every reader, so they cannot drift apart
# ---------------------------------------------------------------------------------------
def dataset_digest(a: np.ndarray) -> str:
    """sha256 of one dataset as stored: dtype, shape and bytes; strings as a JSON list."""
    h = hashlib.sha256()
    if a.dtype.kind in "OUS":  # ids / split: h5py gives str objects back
        h.update(b"str")
        h.update(json.dumps([str(x) for x in a.tolist()], ensure_ascii=False).encode())
    else:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a)  # the buffer itself: no copy of a large feature matrix
    return h.hexdigest()


def attrs_digest(attrs: dict[str, Any]) -> str:
    """sha256 over the decoded CHECKED_ATTRS (absent ones count as null)."""
    blob = json.dumps({k: attrs.get(k) for k in CHECKED_ATTRS}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def overall_checksum(checksums: dict[str, str]) -> str:
    """The `checksum` attr: a short digest of all per-dataset digests."""
    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()[:16]




# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
# What to do about a filesystem error, by errno: shared by the cache writers and the CLI's
# one-line errors (commands/_common.error_line).
FS_HINTS = {errno.ENOSPC: "free some space or point the output elsewhere",
            errno.EDQUOT: "free some space (disk quota)",
            errno.EROFS: "the folder is read-only: choose a writable output folder",
            errno.EACCES: "no permission: choose a writable output folder",
            errno.EFBIG: "the file is too large here",
            errno.ENOTDIR: "a path component is a file, not a folder: choose another output path",
            errno.EISDIR: "that path is a folder: give a file path"}


def fs_reason(e: BaseException) -> tuple[str, str]:
    """(reason, hint) of an I/O failure; h5py's messages are multi-line, so the errno is
    taken from them and spelled by os.strerror."""
    code = getattr(e, "errno", None)
    if not isinstance(code, int):
        m = re.search(r"errno = (\d+)", str(e))
        code = int(m.group(1)) if m else None
    reason = os.strerror(code) if code else " ".join(str(e).split())[:160]
    return reason, FS_HINTS.get(code or 0, "check the folder")


def check_out_folder(out: str | Path) -> None:
    """Refuse an --out that cannot hold what a command writes, before any work: a file, or a
    folder (or, if it does not exist yet, its nearest existing parent) we cannot create files
    in. os.access alone is not enough (root ignores permissions; read-only mounts), so a
    probe file is created and removed. Raises OSError naming the path."""
    out = Path(out)
    probe_dir = out
    while not probe_dir.exists() and probe_dir.parent != probe_dir:  # where it will be created
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"Not a directory: it is a file, not a folder (--out {out} "
                                 "must be a folder)", str(probe_dir))
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied: cannot write in this folder (--out must be "
                              "writable)", str(probe_dir))
    try:
        fd, probe = tempfile.mkstemp(prefix=".mmgenre-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise type(e)(e.errno, e.strerror or str(e), str(probe_dir)) from None



def _stored_arrays(header: dict[str, np.ndarray], arrays: dict[str, np.ndarray], feature_dtype: str,
                   extra_state: bytes | None) -> dict[str, np.ndarray]:
    """Every dataset exactly as it will be stored (dtype included), in file order."""
    out = {"ids": np.array([str(x) for x in np.asarray(header["ids"]).tolist()], dtype=object),
           "split": np.array([str(x) for x in np.asarray(header["split"]).tolist()], dtype=object),
           "labels": np.ascontiguousarray(np.asarray(header["labels"]).astype(np.uint8)),
           "features": np.ascontiguousarray(arrays["features"].astype(feature_dtype)),
           "present": np.ascontiguousarray(arrays["present"].astype(bool))}
    if "tokens" in arrays:
        out["tokens"] = np.ascontiguousarray(arrays["tokens"].astype(feature_dtype))
        out["token_mask"] = np.ascontiguousarray(arrays["token_mask"].astype(bool))
    # Per-row extras ("aux.<name>", e.g. IDKG's at_label) and per-label ones
    # ("label_extras.<name>", the KG's genre embeddings), float32, from metadata encoders.
    for k, a in sorted({**arrays, **header}.items()):
        if k.startswith(("aux.", "label_extras.")):
            out[k] = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    if extra_state is not None:
        out["extra_state"] = np.frombuffer(extra_state, dtype=np.uint8)
    return out


def _estimate_bytes(stored: dict[str, np.ndarray]) -> int:
    """Size of the HDF5 file, a little over: payload + ~24 B per string + 2% + 1 MiB."""
    payload = 0
    for a in stored.values():
        payload += sum(len(s.encode()) + 24 for s in a.tolist()) if a.dtype == object else a.nbytes
    return int(payload * 1.02) + (1 << 20)


def write_cache_file(final: Path, header: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                     attrs: dict[str, Any], feature_dtype: str, extra_state: bytes | None = None) -> Path:
    """Write a complete cache file (tmp name, fsync, rename): header = ids, split, labels;
    arrays = features, present and optionally tokens + token_mask; attrs as in the layout.

    Free space is checked first against an estimate of the file size. The file is built in
    memory (h5py's core driver) and written to disk on close: when HDF5's own writes fail
    (disk full, a file size limit) h5py can leave the process to crash later with a
    segmentation fault; with the core driver the failure is one Python exception. The cost
    is one file-sized buffer in memory next to the arrays. Any failure removes the temp
    file and is one CacheError line naming the path."""
    final = Path(final)
    stored = _stored_arrays(header, arrays, feature_dtype, extra_state)
    need = _estimate_bytes(stored)
    try:
        free = shutil.disk_usage(final.parent).free
    except OSError as e:
        reason, hint = fs_reason(e)
        raise CacheError(f"cannot write {final}: {reason} ({final.parent}); {hint}") from None
    if need > free:
        raise CacheError(f"not enough free space in {final.parent} for {final.name}: it needs about "
                         f"{need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free; free some space and rerun")
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    sums = {k: dataset_digest(a) for k, a in stored.items()}
    try:
        with h5py.File(tmp, "w", driver="core", backing_store=True) as f:
            for k, a in stored.items():
                if a.dtype == object:
                    f.create_dataset(k, data=a, dtype=STR)
                elif k in ("features", "tokens"):
                    f.create_dataset(k, data=a, chunks=True)
                else:
                    f.create_dataset(k, data=a)
            for k, v in attrs.items():
                f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.integer, np.floating)) \
                    else json.dumps(v, default=str)
            # The attr digest is taken from the attrs as a reader decodes them.
            sums["attrs"] = attrs_digest({k: decode_attr(k, f.attrs[k]) for k in f.attrs})
            f.attrs["checksums"] = json.dumps(sums, sort_keys=True)
            f.attrs["checksum"] = overall_checksum(sums)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except (OSError, RuntimeError) as e:  # h5py raises RuntimeError for some failed writes
        reason, hint = fs_reason(e)
        raise CacheError(f"cannot write {final}: {reason}; {hint}; nothing was written") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write under a temporary name in the same folder, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
