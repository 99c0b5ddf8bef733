"""Issue 9, resumable extraction: damaged batch files recomputed, fsync, leftovers of killed
runs cleaned, a lock that DataLoader workers do not inherit, filesystem errors as one line."""
from __future__ import annotations

import collections
import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cache.store import CacheError
from cache.read import list_caches
from cache.shards import ShardWriter
from cli import app
from extract.run import run_extract
from tests.cache_helpers import assert_same_cache, extract_cfg, one_error_line

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ---- item 4: damaged batch files are recomputed ---------------------------------------------
def _interrupted(demo_root: Path, out: Path, monkeypatch, after: int = 4) -> Path:
    """An extraction that died after `after` batches; returns its .partial folder."""
    orig = ShardWriter.write_batch
    calls = {"n": 0}

    def failing(self, b, arrays):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] > after:
            raise RuntimeError("killed")
        return orig(self, b, arrays)

    monkeypatch.setattr(ShardWriter, "write_batch", failing)
    with pytest.raises(RuntimeError, match="killed"):
        run_extract(extract_cfg(demo_root, out), progress=False)
    monkeypatch.setattr(ShardWriter, "write_batch", orig)
    return next(out.glob("*.h5.partial"))


def _wrong_shape(p: Path) -> None:
    np.savez(p, status=np.zeros(8, np.int8), present=np.ones(8, bool), features=np.zeros((8, 3), np.float32))


DAMAGE = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p: p.write_bytes(b"not a zip file at all" * 10),
    "wrong-keys": lambda p: np.savez(p, x=np.zeros(3)),
    "wrong-shape": _wrong_shape,
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_batch_file_is_discarded_and_recomputed(kind: str, demo_root: Path, ref_cache: Path,
                                                        tmp_path: Path, monkeypatch, capsys) -> None:
    partial = _interrupted(demo_root, tmp_path, monkeypatch)
    shard = partial / "batch-0000001.npz"
    DAMAGE[kind](shard)
    capsys.readouterr()
    res = run_extract(extract_cfg(demo_root, tmp_path), progress=False)
    out = capsys.readouterr().out
    assert f"discarded 1 damaged batch file(s) in {partial}" in out and "recomputing" in out
    assert_same_cache(ref_cache, res.path)
    assert not partial.exists()


def test_batch_files_are_fsynced_before_rename(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    import cache.store as store

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(store.os, "fsync", lambda fd: (events.append(f"fsync:{os.readlink(f'/proc/self/fd/{fd}')}"),
                                                       real_fsync(fd))[1])
    monkeypatch.setattr(store.os, "replace", lambda a, b: (events.append(f"replace:{a}"), real_replace(a, b))[1])
    run_extract(extract_cfg(demo_root, tmp_path), progress=False)
    renamed = [e[len("replace:"):] for e in events if e.startswith("replace:") and e.endswith(".npz")]
    assert renamed
    for tmp in renamed:
        assert events.index(f"fsync:{tmp}") < events.index(f"replace:{tmp}")


# ---- item 5: leftovers ------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stray_tmp_of_killed_assembly_is_removed_on_resume(demo_root: Path, ref_cache: Path, tmp_path: Path,
                                                          monkeypatch, capsys) -> None:
    partial = _interrupted(demo_root, tmp_path, monkeypatch)
    final = partial.with_name(partial.name[: -len(".partial")])
    stray = final.with_name(f"{final.name}.tmp-{_dead_pid()}")
    stray.write_bytes(b"half an hdf5 file")
    (partial / f".tmp-{_dead_pid()}-3.npz").write_bytes(b"half a batch")
    kinds = {r.path.name: r.kind for r in list_caches(tmp_path) if isinstance(r, tuple)}
    assert kinds == {partial.name: "UNFINISHED", stray.name: "STRAY TEMP"}
    res = run_extract(extract_cfg(demo_root, tmp_path), progress=False)
    assert "removed 2 temp file(s)" in capsys.readouterr().out
    assert not stray.exists() and sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert_same_cache(ref_cache, res.path)


def test_partial_left_after_success_is_not_unusable_and_is_removed(demo_root: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    final = run_extract(extract_cfg(demo_root, tmp_path), progress=False).path
    # A kill between the final rename and the cleanup leaves the shard folder behind.
    partial = final.with_name(final.name + ".partial")
    partial.mkdir()
    (partial / "batch-0000000.npz").write_bytes(b"x")
    stray = final.with_name(f"{final.name}.tmp-{_dead_pid()}")
    stray.write_bytes(b"x")
    r = runner.invoke(app, ["cache", "ls", str(tmp_path)])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(partial.name))
    assert "UNUSABLE" not in line and "resume" not in line and "LEFTOVER" in line and "safe to delete" in line
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(stray.name))
    assert "STRAY TEMP" in line and "delete it" in line
    again = run_extract(extract_cfg(demo_root, tmp_path), progress=False)
    assert again.skipped and not partial.exists() and not stray.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]


# ---- item 6: the lock is per process -------------------------------------------------------------
def test_lock_is_not_inherited_by_forked_workers(tmp_path: Path) -> None:
    """A process holding the lock forks a child (as DataLoader workers are forked), then is
    SIGKILLed: the lock must be free at once, not held by the child (flock's behaviour)."""
    final = tmp_path / "x.h5"
    script = (
        "import os, sys, time; sys.path.insert(0, %r)\n"
        "from pathlib import Path\n"
        "from cache.shards import ShardWriter\n"
        "w = ShardWriter(Path(%r), {'key': 'k', 'n': 1, 'batch_size': 1}).__enter__()\n"
        "done = os.fork()  # a worker that exits (closing its copy of the fd) must not free the lock\n"
        "if done == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(done, 0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(60); os._exit(0)\n"
        "print(pid, flush=True)\n"
        "time.sleep(60)\n"
    ) % (str(REPO), str(final))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(CacheError, match="another extract is writing"):
            ShardWriter(final, {"key": "k", "n": 1, "batch_size": 1}).__enter__()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with ShardWriter(final, {"key": "k", "n": 1, "batch_size": 1}):
            pass
    finally:
        proc.kill()
        os.kill(child, signal.SIGKILL)
        proc.stdout.close()


def test_same_process_cannot_take_the_lock_twice(tmp_path: Path) -> None:
    meta = {"key": "k", "n": 1, "batch_size": 1}
    with ShardWriter(tmp_path / "x.h5", meta):
        with pytest.raises(CacheError, match="another extract"):
            ShardWriter(tmp_path / "x.h5", dict(meta)).__enter__()
    with ShardWriter(tmp_path / "x.h5", meta):  # released on exit
        pass
    with pytest.raises(CacheError, match="different settings"):  # refused after taking the lock...
        with ShardWriter(tmp_path / "x.h5", {"key": "other", "n": 1, "batch_size": 1}):
            pass
    with ShardWriter(tmp_path / "x.h5", meta):  # ...which it gave back
        pass


# ---- item 11: filesystem errors ------------------------------------------------------------------
def _extract_args(data: Path, out: Path) -> list[Any]:
    return ["extract", "--data", data, "--encoder", "toy-image", "--out", out, "--workers", "0",
            "--batch-size", "8", "--dtype", "float32"]


def test_out_is_a_file_is_one_line_and_creates_nothing(demo_root: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = one_error_line(_extract_args(demo_root, afile))
    assert str(afile) in line and "is a file" in line
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    line = one_error_line(_extract_args(demo_root, afile / "sub"))
    assert str(afile) in line and "is a file" in line


def test_unwritable_out_is_one_line_before_any_work(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real(p, mode, **kw))
    monkeypatch.setattr("extract.run.load_dataset", lambda *a, **k: pytest.fail("worked before checking --out"))
    line = one_error_line(_extract_args(demo_root, tmp_path / "caches"))
    assert str(tmp_path) in line and "cannot write" in line
    assert not list(tmp_path.iterdir())


def test_disk_full_before_assembly_is_one_line_keeps_shards_and_resumes(demo_root: Path, ref_cache: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    line = one_error_line(_extract_args(demo_root, tmp_path))
    assert "not enough free space" in line and str(tmp_path) in line and "resumes" in line
    partial = next(tmp_path.glob("*.h5.partial"))
    assert len(list(partial.glob("batch-*.npz"))) == 5
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.h5"))
    monkeypatch.undo()
    r = runner.invoke(app, [str(a) for a in _extract_args(demo_root, tmp_path)])
    assert r.exit_code == 0, r.output
    assert_same_cache(ref_cache, next(tmp_path.glob("*.h5")))


def test_write_error_during_assembly_is_one_line_and_leaves_no_tmp(demo_root: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    import cache.store as store

    real = store.h5py.File

    def full(name, mode="r", **kw):  # noqa: ANN001
        if mode == "w":
            f = real(name, mode, **kw)
            f.close()  # the temp file exists, as it would when the disk fills mid-write
            raise OSError(errno.ENOSPC, "No space left on device", str(name))
        return real(name, mode, **kw)

    monkeypatch.setattr(store.h5py, "File", full)
    line = one_error_line(_extract_args(demo_root, tmp_path))
    assert "No space left on device" in line and str(tmp_path) in line
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.h5"))
    assert list(tmp_path.glob("*.h5.partial/batch-*.npz"))


def test_disk_full_while_hdf5_writes_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """HDF5 hitting a write failure (here a file size limit, as a full disk does) used to
    leave h5py to crash the process with a segmentation fault (exit 139)."""
    script = (
        "import resource, signal, sys; sys.path.insert(0, %r)\n"
        "import numpy as np\n"
        "from cache.store import write_cache_file\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "n = 20000\n"
        "try:\n"
        "    write_cache_file(%r, {'ids': np.array([f'm{i}' for i in range(n)], dtype=object),\n"
        "                          'split': np.array(['train'] * n, dtype=object),\n"
        "                          'labels': np.zeros((n, 2), np.uint8)},\n"
        "                     {'features': np.ones((n, 8), np.float32), 'present': np.ones(n, bool)},\n"
        "                     {'label_names': ['a', 'b'], 'encoder': 'x', 'modality': 'image'}, 'float32')\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    ) % (str(REPO), str(tmp_path / "big.h5"))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.startswith("refused: cannot write") and str(tmp_path / "big.h5") in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_a_batch_is_one_line(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    def full(f, **arrays):  # noqa: ANN001
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cache.shards.np.savez", full)
    line = one_error_line(_extract_args(demo_root, tmp_path))
    assert "No space left on device" in line and ".partial" in line and "resumes" in line
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_extract_failing_before_its_first_batch_leaves_no_partial(demo_root: Path, tmp_path: Path) -> None:
    """`-o min_df=abc` fails when TF-IDF is fitted, inside the writer: the .partial folder it
    made (lock + meta.json, no batch) used to stay, and `cache ls` said "rerun to resume"."""
    line = one_error_line(["extract", "--data", demo_root, "--encoder", "tfidf", "-o", "min_df=abc",
                            "--out", tmp_path, "--workers", "0"])
    assert "min_df" in line
    assert list(tmp_path.iterdir()) == []
    r = runner.invoke(app, ["cache", "ls", str(tmp_path)])
    assert r.exit_code == 0 and "UNFINISHED" not in r.output and "no caches" in r.output, r.output


def test_shard_writer_removes_only_an_empty_folder_it_made(tmp_path: Path) -> None:
    meta = {"key": "k", "n": 4, "batch_size": 2}
    final = tmp_path / "x.h5"
    partial = tmp_path / "x.h5.partial"
    with pytest.raises(RuntimeError):
        with ShardWriter(final, dict(meta)):
            raise RuntimeError("encoder failed")
    assert not partial.exists()  # made by this run, no batch: nothing to resume
    with pytest.raises(RuntimeError):
        with ShardWriter(final, dict(meta)) as w:
            w.write_batch(0, {"status": np.zeros(2, np.int8)})
            raise RuntimeError("killed")
    assert (partial / "batch-0000000.npz").exists()  # resumable work stays
    (partial / "batch-0000000.npz").unlink()
    with pytest.raises(RuntimeError):
        with ShardWriter(final, dict(meta)):
            raise RuntimeError("again")
    assert partial.is_dir()  # an earlier run's folder is not this run's to remove
    with ShardWriter(final, dict(meta)):
        pass
    assert partial.is_dir()  # success without finish() (finish removes it) leaves it alone
