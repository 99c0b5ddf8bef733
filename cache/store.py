"""HDF5 feature cache: naming by settings hash, resumable shards, atomic completion, verify.

One file per (data set, modality, encoder config). Layout (see DESIGN.md):

    ids (N,) utf-8 | labels (N, C) uint8 | split (N,) utf-8 | features (N, D) float16/32
    present (N,) bool  -- False: missing/corrupt poster or empty text; features row is NaN
    tokens (N, T, Dt) + token_mask (N, T) bool   -- only with --tokens
    extra_state (bytes, uint8)                   -- e.g. the fitted TF-IDF vectorizer
    attrs: label_names, encoder, weights, preprocess, modality, dataset_fingerprint,
           complete, versions, created, command, config, missing, checksum, ...

Resumability: while a run is in progress its finished batches live as separate files in
`<name>.h5.partial/`, each written under a temporary name and renamed, so a run killed at
any instant (SIGKILL included) leaves only whole batches behind. An HDF5 file killed in
the middle of a flush can be left with chunks and 'done' flags out of step; shards cannot.
When every batch is there, the HDF5 file is written as `<name>.h5.tmp-<pid>` and renamed
to `<name>.h5`. A non-blocking flock on `<name>.h5.partial/lock` refuses a second writer.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
STR = h5py.string_dtype("utf-8")


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
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
class ShardWriter:
    """Resumable batch store for one cache file; hold it with `with`."""

    def __init__(self, final: Path, meta: dict[str, Any]) -> None:
        self.final = Path(final)
        self.dir = self.final.with_name(self.final.name + ".partial")
        self.meta = meta
        self._lock_fd: int | None = None

    def __enter__(self) -> "ShardWriter":
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CacheError(
                f"another extract is writing {self.final.name} right now (lock held on "
                f"{self.dir / 'lock'}); wait for it to finish, it will produce the same cache") from None
        self._lock_fd = fd
        meta_path = self.dir / "meta.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("key") != self.meta.get("key") or old.get("n") != self.meta.get("n"):
                raise CacheError(f"{self.dir} belongs to different settings; delete it to start over")
            self.meta["batch_size"] = old["batch_size"]  # resume on the same batch boundaries
        else:
            atomic_write(meta_path, json.dumps(self.meta, sort_keys=True, default=str).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def batch_size(self) -> int:
        return int(self.meta["batch_size"])

    def _shard(self, b: int) -> Path:
        return self.dir / f"batch-{b:07d}.npz"

    def done_batches(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.dir.glob("batch-*.npz")}

    def write_batch(self, b: int, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.dir / f".tmp-{os.getpid()}-{b}.npz"
        # Written whole, then renamed: a killed process leaves a whole shard or none. No fsync
        # per batch (it costs more than the batch on fast GPUs); a process kill loses nothing
        # the kernel already has, and the final file is fsynced.
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, self._shard(b))

    def read_batch(self, b: int) -> dict[str, np.ndarray]:
        with np.load(self._shard(b), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def finish(self, n_batches: int, header: dict[str, np.ndarray], attrs: dict[str, Any],
               feature_dtype: str, extra_state: bytes | None = None) -> Path:
        """Assemble all shards into the final HDF5 file (tmp name, then rename), clean up."""
        missing = sorted(set(range(n_batches)) - self.done_batches())
        if missing:
            raise CacheError(f"{len(missing)} batches missing in {self.dir}; rerun extract to finish")
        parts = [self.read_batch(b) for b in range(n_batches)]
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        write_cache_file(self.final, header, cat, attrs, feature_dtype, extra_state)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.final


def write_cache_file(final: Path, header: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                     attrs: dict[str, Any], feature_dtype: str, extra_state: bytes | None = None) -> Path:
    """Write a complete cache file (tmp name, fsync, rename): header = ids, split, labels;
    arrays = features, present and optionally tokens + token_mask; attrs as in the layout."""
    final = Path(final)
    features = arrays["features"].astype(feature_dtype)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ids", data=np.asarray(header["ids"]).astype(object), dtype=STR)
            f.create_dataset("split", data=np.asarray(header["split"]).astype(object), dtype=STR)
            f.create_dataset("labels", data=np.asarray(header["labels"]).astype(np.uint8))
            f.create_dataset("features", data=features, chunks=True)
            f.create_dataset("present", data=arrays["present"].astype(bool))
            if "tokens" in arrays:
                f.create_dataset("tokens", data=arrays["tokens"].astype(feature_dtype), chunks=True)
                f.create_dataset("token_mask", data=arrays["token_mask"].astype(bool))
            if extra_state is not None:
                f.create_dataset("extra_state", data=np.frombuffer(extra_state, dtype=np.uint8))
            for k, v in attrs.items():
                f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.integer, np.floating)) \
                    else json.dumps(v, default=str)
            f.attrs["checksum"] = array_checksum(features)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write under a temporary name in the same folder, then rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
JSON_ATTRS = ("label_names", "preprocess", "config", "versions", "missing", "report", "options")


@dataclass
class CacheInfo:
    path: Path
    attrs: dict[str, Any]
    n: int
    dim: int
    token_shape: tuple[int, int] | None
    dtype: str

    @property
    def label_names(self) -> list[str]:
        return list(self.attrs["label_names"])


def _rerun_hint(path: Path, attrs: dict[str, Any] | None = None) -> str:
    cmd = (attrs or {}).get("command")
    return f"rerun: {cmd}" if cmd else "rerun the `extract` command that made it"


def open_info(path: str | Path) -> CacheInfo:
    """Read and check a cache's header; refuses partial, truncated or foreign files."""
    path = Path(path)
    if path.name.endswith(".partial") or ".h5.tmp-" in path.name:
        raise CacheError(f"{path} is an unfinished extraction, not a cache; rerun extract to finish it")
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        if partial.exists():
            raise CacheError(f"{path} is not finished ({partial} holds a resumable run); "
                             "rerun the same extract command to complete it")
        raise FileNotFoundError(f"cache file {path} does not exist; run `extract` first or check the path")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode_attr(k, v) for k, v in f.attrs.items()}
            if not attrs.get("complete"):
                raise CacheError(f"{path} is incomplete; {_rerun_hint(path, attrs)}")
            if attrs.get("format_version") != FORMAT_VERSION:
                raise CacheError(f"{path} has cache format {attrs.get('format_version')}, this mmgenre "
                                 f"reads {FORMAT_VERSION}; {_rerun_hint(path, attrs)}")
            for name in ("ids", "labels", "split", "features", "present"):
                if name not in f:
                    raise CacheError(f"{path} has no '{name}' dataset; {_rerun_hint(path, attrs)}")
            n, dim = f["features"].shape
            for name in ("ids", "labels", "split", "present"):
                if f[name].shape[0] != n:
                    raise CacheError(f"{path}: '{name}' has {f[name].shape[0]} rows, features {n}; "
                                     f"the file is damaged; {_rerun_hint(path, attrs)}")
            tok = tuple(f["tokens"].shape[1:3]) if "tokens" in f else None
            dtype = str(f["features"].dtype)
    except CacheError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CacheError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); "
                         "delete it and rerun the extract command that made it") from None
    return CacheInfo(path, attrs, n, dim, tok, dtype)


def _decode_attr(k: str, v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if k in JSON_ATTRS and isinstance(v, str):
        return json.loads(v)
    return v


def verify(path: str | Path) -> CacheInfo:
    """Full check: header, every dataset readable, checksum, NaN exactly where missing."""
    info = open_info(path)
    try:
        with h5py.File(info.path, "r") as f:
            feats = f["features"][...]
            present = f["present"][...]
            labels = f["labels"][...]
            if "tokens" in f:
                f["tokens"][...]
    except OSError as e:
        raise CacheError(f"{info.path} is truncated or corrupt (reading data: {e}); "
                         f"delete it and {_rerun_hint(info.path, info.attrs)}") from None
    if array_checksum(feats) != info.attrs.get("checksum"):
        raise CacheError(f"{info.path}: feature checksum mismatch (file altered or damaged); "
                         f"delete it and {_rerun_hint(info.path, info.attrs)}")
    finite = np.isfinite(feats).all(axis=1)
    if not np.array_equal(finite, present):
        raise CacheError(f"{info.path}: {int((finite != present).sum())} rows where the missing-mask "
                         "and the features disagree; the file is damaged")
    if labels.shape[1] != len(info.label_names):
        raise CacheError(f"{info.path}: {labels.shape[1]} label columns but "
                         f"{len(info.label_names)} label names")
    return info


def list_caches(folder: str | Path) -> list[CacheInfo | tuple[Path, str]]:
    """Every *.h5 in a folder: its info, or (path, reason) when it does not open."""
    out: list[CacheInfo | tuple[Path, str]] = []
    for p in sorted(Path(folder).glob("*.h5")):
        try:
            out.append(open_info(p))
        except (CacheError, FileNotFoundError) as e:
            out.append((p, str(e)))
    for p in sorted(Path(folder).glob("*.h5.partial")):
        out.append((p, "unfinished: rerun the same extract command to resume"))
    return out
