"""HDF5 feature cache: naming by settings hash, resumable shards, atomic completion, verify.

One file per (data set, modality, encoder config). Layout (see DESIGN.md):

    ids (N,) utf-8 | labels (N, C) uint8 | split (N,) utf-8 | features (N, D) float16/32
    present (N,) bool  -- False: missing/corrupt poster or empty text; features row is NaN
    tokens (N, T, Dt) + token_mask (N, T) bool   -- only with --tokens
    extra_state (bytes, uint8)                   -- e.g. the fitted TF-IDF vectorizer
    attrs: label_names, encoder, weights, preprocess, modality, dataset_fingerprint,
           complete, versions, created, command, config, missing, checksums, checksum, ...

Integrity: `checksums` (JSON) holds a sha256 per dataset plus one ("attrs") over the attrs
that change the numbers (CHECKED_ATTRS); `checksum` is a digest of `checksums`. Readers
check the attr digests on every open (cheap) and the digest of every dataset they read
(`check_arrays`, shared by `verify` and `cache.features.load_features`, so a refusal reads
the same everywhere), plus structure: unique ids, known splits, 0/1 labels, NaN exactly in
the rows marked missing.

Resumability: while a run is in progress its finished batches live as separate files in
`<name>.h5.partial/`, each written under a temporary name, fsynced and renamed, so a run
killed at any instant (SIGKILL included) leaves only whole batches behind; a batch file
damaged anyway (disk trouble, a crash of the machine) is found on resume, deleted and
recomputed. When every batch is there, the HDF5 file is written as `<name>.h5.tmp-<pid>`
and renamed to `<name>.h5`. A non-blocking POSIX lock on `<name>.h5.partial/lock` refuses
a second writer. Leftovers of killed runs (temp files, a `.partial/` whose cache is
complete) are removed by the next run.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

# 2: per-dataset checksums covering ids, labels, split, present, features, tokens and the
# attrs that change the numbers (1 covered features only).
FORMAT_VERSION = 2
STR = h5py.string_dtype("utf-8")
# Attrs that change what a head sees; their digest is part of the checksum.
CHECKED_ATTRS = ("label_names", "encoder", "weights", "preprocess", "options", "modality",
                 "text_field", "dataset_fingerprint")
REQUIRED_ATTRS = ("label_names", "encoder", "modality")
REQUIRED_DATASETS = ("ids", "labels", "split", "features", "present")
SPLITS = ("train", "dev", "test", "none")


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
# The lock: per process, never inherited by DataLoader workers
# ---------------------------------------------------------------------------------------
# Why POSIX record locks (fcntl.lockf) and not flock: a flock belongs to the open file
# description, which fork() shares, so DataLoader workers forked while extract holds the
# lock keep it alive for seconds after the parent is SIGKILLed and a restart is refused.
# lockf locks belong to the process: a forked child never holds them and they vanish when
# the holder dies. Their catch: closing ANY descriptor of the file in the holding process
# drops the lock, and the same process may lock twice; so the lock file is opened exactly
# once per holder and this registry refuses a second holder inside one process.
_HELD: set[str] = set()


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.key = os.path.realpath(self.path)
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.key in _HELD:  # checked before opening: an open+close here would drop our lock
            return False
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        self.fd = fd
        _HELD.add(self.key)
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the POSIX lock
            self.fd = None
            _HELD.discard(self.key)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_pid(p: Path) -> int | None:
    m = re.search(r"\.tmp-(\d+)$", p.name)
    return int(m.group(1)) if m else None


def _stray_tmps(final: Path) -> list[Path]:
    """`<name>.h5.tmp-<pid>` files of one cache (HDF5 assemblies that never got renamed)."""
    # Cache names are [A-Za-z0-9._-] only (cache_filename), so they need no glob escaping.
    return sorted(p for p in final.parent.glob(f"{final.name}.tmp-*") if _tmp_pid(p) is not None)


def clean_finished(final: Path) -> list[Path]:
    """Remove what killed runs left beside a complete cache: its `.partial/` folder (a kill
    between the final rename and the cleanup) and temp files of processes that are gone.
    Call only after `open_info(final)` succeeded. Returns what was removed."""
    final = Path(final)
    removed = [p for p in _stray_tmps(final) if not _pid_alive(_tmp_pid(p) or 0)]
    for p in removed:
        p.unlink(missing_ok=True)
    partial = final.with_name(final.name + ".partial")
    if partial.is_dir():
        lock = _Lock(partial / "lock")
        if lock.try_acquire():  # held: a writer is still inside finish(); it cleans up itself
            try:
                shutil.rmtree(partial, ignore_errors=True)
                removed.append(partial)
            finally:
                lock.release()
    return removed


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------
_FS_HINTS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (disk quota)",
             errno.EROFS: "the folder is read-only: choose a writable --out",
             errno.EACCES: "no permission: choose a writable --out", errno.EFBIG: "the file is too large here"}


def _fs_reason(e: BaseException) -> tuple[str, str]:
    """(reason, hint) of an I/O failure; h5py's messages are multi-line, so the errno is
    taken from them and spelled by os.strerror."""
    code = getattr(e, "errno", None)
    if not isinstance(code, int):
        m = re.search(r"errno = (\d+)", str(e))
        code = int(m.group(1)) if m else None
    reason = os.strerror(code) if code else " ".join(str(e).split())[:160]
    return reason, _FS_HINTS.get(code or 0, "check the folder")


class ShardWriter:
    """Resumable batch store for one cache file; hold it with `with`."""

    def __init__(self, final: Path, meta: dict[str, Any]) -> None:
        self.final = Path(final)
        self.dir = self.final.with_name(self.final.name + ".partial")
        self.meta = meta
        self._lock: _Lock | None = None
        self.removed: list[Path] = []  # leftovers of killed runs removed on entry

    def __enter__(self) -> "ShardWriter":
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = _Lock(self.dir / "lock")
        if not lock.try_acquire():
            raise CacheError(
                f"another extract is writing {self.final.name} right now (lock held on "
                f"{self.dir / 'lock'}); wait for it to finish, it will produce the same cache")
        self._lock = lock
        try:
            self._start()
        except BaseException:
            self.__exit__()  # `with` does not call __exit__ when __enter__ raises
            raise
        return self

    def _start(self) -> None:
        # Under the lock nobody else writes this cache: temp files are a killed run's.
        self.removed = _stray_tmps(self.final) + sorted(self.dir.glob(".tmp-*"))
        for p in self.removed:
            p.unlink(missing_ok=True)
        meta_path = self.dir / "meta.json"
        if meta_path.exists():
            try:
                old = json.loads(meta_path.read_text())
            except ValueError:
                raise CacheError(f"{meta_path} is damaged; delete {self.dir} to start over") from None
            if old.get("key") != self.meta.get("key") or old.get("n") != self.meta.get("n"):
                raise CacheError(f"{self.dir} belongs to different settings; delete it to start over")
            self.meta["batch_size"] = old["batch_size"]  # resume on the same batch boundaries
        else:
            atomic_write(meta_path, json.dumps(self.meta, sort_keys=True, default=str).encode())

    def __exit__(self, *exc: Any) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def batch_size(self) -> int:
        return int(self.meta["batch_size"])

    def _shard(self, b: int) -> Path:
        return self.dir / f"batch-{b:07d}.npz"

    def _rows(self, b: int) -> int:
        n, bs = int(self.meta["n"]), self.batch_size
        return max(0, min(n, (b + 1) * bs) - b * bs)

    def done_batches(self) -> set[int]:
        out = set()
        for p in self.dir.glob("batch-*.npz"):
            try:
                out.add(int(p.stem.split("-")[1]))
            except ValueError:
                continue
        return out

    def write_batch(self, b: int, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.dir / f".tmp-{os.getpid()}-{b}.npz"
        # Written whole, fsynced, then renamed: a killed process (or a crashed machine) leaves
        # a whole shard or none. The fsync costs a few ms per batch, small next to encoding a
        # batch, and saves recomputing batches whose pages never reached the disk; a shard
        # damaged anyway is caught on resume (discard_damaged).
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._shard(b))
        except OSError as e:
            tmp.unlink(missing_ok=True)
            reason, hint = _fs_reason(e)
            raise CacheError(f"cannot write batch {b} in {self.dir}: {reason}; {hint}, then rerun the same "
                             "command: the finished batches are kept and it resumes") from None

    def read_batch(self, b: int) -> dict[str, np.ndarray]:
        with np.load(self._shard(b), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def discard_damaged(self, expected: dict[str, tuple[tuple[int, ...] | None, str]]) -> list[Path]:
        """Delete batch files that do not read back whole with the expected arrays; returns them.

        expected: name -> (shape after the row axis, or None = any but the same in every
        batch; numpy dtype kind). Every array is read, which checks the zip CRCs too."""
        bad: list[int] = []
        free_shapes: dict[int, tuple] = {}
        for b in sorted(self.done_batches()):
            try:
                z = self.read_batch(b)
                rows = self._rows(b)
                ok = rows > 0 and set(z) == set(expected)
                for k, (trail, kind) in expected.items():
                    ok = ok and z[k].shape[:1] == (rows,) and z[k].dtype.kind == kind \
                        and (trail is None or z[k].shape[1:] == trail)
            except Exception:  # noqa: BLE001 - empty, truncated, not a zip, bad CRC...: all "damaged"
                ok = False
            if not ok:
                bad.append(b)
            else:
                free_shapes[b] = tuple(z[k].shape[1:] for k, (t, _) in sorted(expected.items()) if t is None)
        if free_shapes:  # token shapes must agree across batches: the odd ones out are damaged
            common = Counter(free_shapes.values()).most_common(1)[0][0]
            bad += [b for b, s in free_shapes.items() if s != common]
        paths = [self._shard(b) for b in sorted(bad)]
        for p in paths:
            p.unlink(missing_ok=True)
        return paths

    def finish(self, n_batches: int, header: dict[str, np.ndarray], attrs: dict[str, Any],
               feature_dtype: str, extra_state: bytes | None = None) -> Path:
        """Assemble all shards into the final HDF5 file (tmp name, then rename), clean up."""
        missing = sorted(set(range(n_batches)) - self.done_batches())
        if missing:
            raise CacheError(f"{len(missing)} batches missing in {self.dir}; rerun extract to finish")
        parts = []
        for b in range(n_batches):
            try:
                parts.append(self.read_batch(b))
            except Exception:  # noqa: BLE001 - damaged since the resume check: recompute it
                self._shard(b).unlink(missing_ok=True)
                raise CacheError(f"batch file {self._shard(b)} is damaged; deleted it, rerun the same "
                                 "command to recompute it") from None
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        del parts
        try:
            write_cache_file(self.final, header, cat, attrs, feature_dtype, extra_state)
        except CacheError as e:
            raise CacheError(f"{e}; the finished batches stay in {self.dir}, so rerunning the same "
                             "command resumes") from None
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.final


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
        reason, hint = _fs_reason(e)
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
            sums["attrs"] = attrs_digest({k: _decode_attr(k, f.attrs[k]) for k in f.attrs})
            f.attrs["checksums"] = json.dumps(sums, sort_keys=True)
            f.attrs["checksum"] = overall_checksum(sums)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except (OSError, RuntimeError) as e:  # h5py raises RuntimeError for some failed writes
        reason, hint = _fs_reason(e)
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


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
JSON_ATTRS = ("label_names", "preprocess", "config", "versions", "missing", "report", "options", "checksums")


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
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode_attr(k, v) for k, v in f.attrs.items()}
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
            for name in datasets:
                if name != "extra_state" and f[name].shape[0] != n:
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


def _decode_attr(k: str, v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if k in JSON_ATTRS and isinstance(v, str):
        return json.loads(v)
    return v


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
        pid = _tmp_pid(p)
        if pid is None:
            continue
        if _pid_alive(pid):
            out.append(Entry(p, f"being written by process {pid} (or left by a killed one whose pid is "
                                "reused); leave it while that runs", "STRAY TEMP"))
        else:
            out.append(Entry(p, f"left by a killed run (process {pid} is gone); delete it, or rerun the "
                                "extract command, which removes it", "STRAY TEMP"))
    return sorted(out, key=lambda r: r.path.name)
