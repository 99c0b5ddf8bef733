"""Resumable extraction: batch files, the writer's lock, leftovers of killed runs.

While a run is in progress its finished batches live as separate files in
`<name>.h5.partial/`, each written under a temporary name, fsynced and renamed, so a run
killed at any instant (SIGKILL included) leaves only whole batches behind; a batch file
damaged anyway (disk trouble, a crash of the machine) is found on resume, deleted and
recomputed. When every batch is there, the HDF5 file is written as `<name>.h5.tmp-<pid>`
(cache.store.write_cache_file) and renamed to `<name>.h5`. A non-blocking POSIX lock on
`<name>.h5.partial/lock` refuses a second writer. Leftovers of killed runs (temp files, a
`.partial/` whose cache is complete) are removed by the next run.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cache.store import CacheError, atomic_write, fs_reason, write_cache_file

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


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (the writer of a `*.tmp-<pid>` leftover)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tmp_pid(p: Path) -> int | None:
    m = re.search(r"\.tmp-(\d+)$", p.name)
    return int(m.group(1)) if m else None


def _stray_tmps(final: Path) -> list[Path]:
    """`<name>.h5.tmp-<pid>` files of one cache (HDF5 assemblies that never got renamed)."""
    # Cache names are [A-Za-z0-9._-] only (cache_filename), so they need no glob escaping.
    return sorted(p for p in final.parent.glob(f"{final.name}.tmp-*") if tmp_pid(p) is not None)


def clean_finished(final: Path) -> list[Path]:
    """Remove what killed runs left beside a complete cache: its `.partial/` folder (a kill
    between the final rename and the cleanup) and temp files of processes that are gone.
    Call only after `open_info(final)` succeeded. Returns what was removed."""
    final = Path(final)
    removed = [p for p in _stray_tmps(final) if not pid_alive(tmp_pid(p) or 0)]
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




class ShardWriter:
    """Resumable batch store for one cache file; hold it with `with`."""

    def __init__(self, final: Path, meta: dict[str, Any]) -> None:
        self.final = Path(final)
        self.dir = self.final.with_name(self.final.name + ".partial")
        self.meta = meta
        self._lock: _Lock | None = None
        self.removed: list[Path] = []  # leftovers of killed runs removed on entry
        self.created = False  # True: this writer made self.dir (nothing of an earlier run is in it)

    def __enter__(self) -> "ShardWriter":
        self.created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = _Lock(self.dir / "lock")
        if not lock.try_acquire():
            self.created = False  # another writer owns the folder now: never ours to remove
            raise CacheError(
                f"another extract is writing {self.final.name} right now (lock held on "
                f"{self.dir / 'lock'}); wait for it to finish, it will produce the same cache")
        self._lock = lock
        try:
            self._start()
        except BaseException as e:
            self.__exit__(type(e), e, e.__traceback__)  # `with` does not call __exit__ when __enter__ raises
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

    def __exit__(self, exc_type: Any = None, *exc: Any) -> None:
        if self._lock is not None:
            # A run that failed before its first batch (an encoder option that fails when the
            # encoder is built, a bad input) leaves nothing worth resuming: remove the folder
            # it made, while still holding the lock, or `cache ls` would call it UNFINISHED
            # and "rerun to resume" would fail the same way. A folder holding batches is
            # resumable work and stays; one that existed before this run is not ours.
            if exc_type is not None and self.created and not self.done_batches():
                shutil.rmtree(self.dir, ignore_errors=True)
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
            reason, hint = fs_reason(e)
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
