"""Issue 9, cache side: integrity checked on load, damaged shards recomputed, leftovers
cleaned, a lock that DataLoader workers do not inherit, filesystem errors as one line."""
from __future__ import annotations

import collections
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cache.features import load_features
from cache.store import CacheError, write_cache_file
from cache.read import list_caches, open_info, verify
from cache.shards import ShardWriter
from cli import app
from extract.datasets import DatasetConfig
from extract.demo_data import make_demo_dataset
from extract.run import ExtractConfig, run_extract

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# ---- helpers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n=40, seed=2)


@pytest.fixture(scope="module")
def ref_cache(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted extraction, the reference for every resumed one."""
    return run_extract(_cfg(demo_root, tmp_path_factory.mktemp("ref")), progress=False).path


def _cfg(root: Path, out: Path, **kw: Any) -> ExtractConfig:
    base = dict(dataset=DatasetConfig(path=root, format="mmimdb"), encoder="toy-image", out=out,
                batch_size=8, workers=0, dtype="float32")
    base.update(kw)
    return ExtractConfig(**base)


def _same(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb)
        for k in fa:
            np.testing.assert_array_equal(fa[k][...], fb[k][...], err_msg=k)  # bit-identical


def _copy(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, dst_dir / src.name))


def _edit(path: Path, fn: Callable[[h5py.File], None]) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _set(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        f[name][...] = value(f[name][...])
    return fn


def _xor(f: h5py.File) -> None:
    x = f["features"][...]
    f["features"][...] = (x.view(np.uint32) ^ np.uint32(0x00010000)).view(np.float32)


def _dup_id(f: h5py.File) -> None:
    ids = f["ids"].asstr()[...]
    ids[1] = ids[0]
    f["ids"][...] = ids.astype(object)


def _one_error_line(args: list[Any]) -> str:
    """Run the CLI; assert exit 2, no traceback and exactly one line on stderr; return it."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip() and "|" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0][len("error: "):]


def _small_cache(path: Path, n: int = 30, ids: list[str] | None = None, nan_rows: tuple[int, ...] = (),
                 tokens: bool = False) -> Path:
    """A tiny complete cache through the real writer; nan_rows are NaN but marked present."""
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n, 4)).astype(np.float32)
    present = np.ones(n, bool)
    present[-1] = False
    feats[-1] = np.nan
    feats[list(nan_rows)] = np.nan
    split = np.array((["train", "dev", "test"] * n)[:n], dtype=object)
    labels = np.eye(3, dtype=np.uint8)[np.arange(n) % 3]
    arrays: dict[str, np.ndarray] = {"features": feats, "present": present}
    if tokens:
        arrays["tokens"] = rng.standard_normal((n, 5, 2)).astype(np.float32)
        arrays["token_mask"] = np.ones((n, 5), bool)
    attrs = {"label_names": ["a", "b", "c"], "encoder": "toy", "weights": "w0", "preprocess": {"size": 4},
             "options": {"k": 1}, "modality": "image", "text_field": "", "dataset_fingerprint": "fp",
             "command": "mmgenre extract ..."}
    return write_cache_file(path, {"ids": np.array(ids or [f"m{i}" for i in range(n)], dtype=object),
                                   "split": split, "labels": labels}, arrays, attrs, "float32",
                            extra_state=b"state" if tokens else None)


# ---- items 1-3: integrity on every load ---------------------------------------------------
ALTERATIONS = {
    "xor-features": (_xor, "checksum"),
    "checksum-attr": (lambda f: f.attrs.__setitem__("checksum", "0" * 16), "checksum"),
    "zeroed-present": (_set("present", np.zeros_like), "checksum"),
    "inverted-labels": (_set("labels", lambda y: 1 - y), "checksum"),
    "duplicated-id": (_dup_id, "checksum"),
    "no-label-names": (lambda f: f.attrs.__delitem__("label_names"), "no 'label_names' attr"),
    "old-format": (lambda f: f.attrs.__setitem__("format_version", 1), "has cache format 1"),
}


@pytest.mark.parametrize("case", sorted(ALTERATIONS))
def test_altered_cache_is_refused_by_verify_load_and_train_head(case: str, ref_cache: Path,
                                                                tmp_path: Path) -> None:
    """verify, load_features (train-head, sweep) and the train-head CLI all refuse an altered
    cache, with the same line; today train-head trains on it with exit 0."""
    fn, expect = ALTERATIONS[case]
    bad = _edit(_copy(ref_cache, tmp_path), fn)
    with pytest.raises(CacheError) as by_verify:
        verify(bad)
    msg = str(by_verify.value)
    assert expect in msg and str(bad) in msg and "\n" not in msg
    with pytest.raises(CacheError) as by_load:
        load_features({"image": bad})
    assert str(by_load.value) == msg
    line = _one_error_line(["train-head", "-f", f"image={bad}", "--fusion", "linear", "--max-epochs", "1",
                            "--quiet", "--out", tmp_path / "runs"])
    assert line == msg
    assert not list((tmp_path / "runs").glob("*/metrics.json"))


@pytest.mark.parametrize("name", ["ids", "labels", "split", "present", "features", "tokens", "token_mask",
                                  "extra_state", "label_names", "encoder", "weights", "preprocess", "options",
                                  "modality", "text_field", "dataset_fingerprint"])
def test_checksum_covers_every_dataset_and_number_changing_attr(name: str, tmp_path: Path) -> None:
    path = _small_cache(tmp_path / "c.h5", tokens=True)
    verify(path)
    with h5py.File(path, "r") as f:
        sums = __import__("json").loads(f.attrs["checksums"])
    assert {"ids", "labels", "split", "present", "features", "tokens", "token_mask", "extra_state",
            "attrs"} <= set(sums)

    def alter(f: h5py.File) -> None:
        if name not in f:  # an attr
            f.attrs[name] = {"label_names": '["c", "b", "a"]', "preprocess": '{"size": 5}',
                             "options": '{"k": 2}'}.get(name, "x")
        elif h5py.check_string_dtype(f[name].dtype):
            a = f[name].asstr()[...]
            a[0] = "dev" if name == "split" else "other"
            f[name][...] = a.astype(object)
        else:
            a = f[name][...]
            a.flat[0] = (not a.flat[0]) if a.dtype == bool else (1 - a.flat[0] if name == "labels" else a.flat[0] + 1)
            f[name][...] = a

    _edit(path, alter)
    with pytest.raises(CacheError, match="checksum mismatch"):
        verify(path)


def test_duplicate_ids_and_nan_rows_refused_even_with_a_valid_checksum(tmp_path: Path) -> None:
    """Structure checks, not only checksums: a writer that stored a duplicated id or NaN in a
    row marked present makes a cache no load accepts (today: trains, 'probs contain NaN')."""
    dup = _small_cache(tmp_path / "dup.h5", ids=["m0", "m0", *[f"m{i}" for i in range(2, 30)]])
    with pytest.raises(CacheError, match=r"ids appear more than once \(e.g. 'm0'\)"):
        verify(dup)
    nan = _small_cache(tmp_path / "nan.h5", nan_rows=(3, 7))
    with pytest.raises(CacheError) as e:
        load_features({"image": nan})
    msg = str(e.value)
    assert str(nan) in msg and "2 rows marked present have NaN/inf" in msg and "m3, m7" in msg
    line = _one_error_line(["train-head", "-f", f"image={nan}", "--fusion", "linear", "--max-epochs", "1",
                            "--quiet", "--out", tmp_path / "runs"])
    assert line == msg


def test_sources_record_absolute_cache_paths(ref_cache: Path, tmp_path: Path, monkeypatch) -> None:
    local = _copy(ref_cache, tmp_path / "caches")
    monkeypatch.chdir(tmp_path)
    fs = load_features({"image": Path("caches") / local.name})
    assert fs.sources["image"]["path"] == str(local.resolve())


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
        run_extract(_cfg(demo_root, out), progress=False)
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
    res = run_extract(_cfg(demo_root, tmp_path), progress=False)
    out = capsys.readouterr().out
    assert f"discarded 1 damaged batch file(s) in {partial}" in out and "recomputing" in out
    _same(ref_cache, res.path)
    assert not partial.exists()


def test_batch_files_are_fsynced_before_rename(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    import cache.store as store

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(store.os, "fsync", lambda fd: (events.append(f"fsync:{os.readlink(f'/proc/self/fd/{fd}')}"),
                                                       real_fsync(fd))[1])
    monkeypatch.setattr(store.os, "replace", lambda a, b: (events.append(f"replace:{a}"), real_replace(a, b))[1])
    run_extract(_cfg(demo_root, tmp_path), progress=False)
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
    res = run_extract(_cfg(demo_root, tmp_path), progress=False)
    assert "removed 2 temp file(s)" in capsys.readouterr().out
    assert not stray.exists() and sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    _same(ref_cache, res.path)


def test_partial_left_after_success_is_not_unusable_and_is_removed(demo_root: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    final = run_extract(_cfg(demo_root, tmp_path), progress=False).path
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
    again = run_extract(_cfg(demo_root, tmp_path), progress=False)
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
    line = _one_error_line(_extract_args(demo_root, afile))
    assert str(afile) in line and "is a file" in line
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    line = _one_error_line(_extract_args(demo_root, afile / "sub"))
    assert str(afile) in line and "is a file" in line


def test_unwritable_out_is_one_line_before_any_work(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real(p, mode, **kw))
    monkeypatch.setattr("extract.run.load_dataset", lambda *a, **k: pytest.fail("worked before checking --out"))
    line = _one_error_line(_extract_args(demo_root, tmp_path / "caches"))
    assert str(tmp_path) in line and "cannot write" in line
    assert not list(tmp_path.iterdir())


def test_disk_full_before_assembly_is_one_line_keeps_shards_and_resumes(demo_root: Path, ref_cache: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    line = _one_error_line(_extract_args(demo_root, tmp_path))
    assert "not enough free space" in line and str(tmp_path) in line and "resumes" in line
    partial = next(tmp_path.glob("*.h5.partial"))
    assert len(list(partial.glob("batch-*.npz"))) == 5
    assert not list(tmp_path.glob("*.tmp-*")) and not list(tmp_path.glob("*.h5"))
    monkeypatch.undo()
    r = runner.invoke(app, [str(a) for a in _extract_args(demo_root, tmp_path)])
    assert r.exit_code == 0, r.output
    _same(ref_cache, next(tmp_path.glob("*.h5")))


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
    line = _one_error_line(_extract_args(demo_root, tmp_path))
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
    line = _one_error_line(_extract_args(demo_root, tmp_path))
    assert "No space left on device" in line and ".partial" in line and "resumes" in line
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


# ---- items 12, 13: attrs and split sizes ---------------------------------------------------------
def test_missing_required_attr_names_it(ref_cache: Path, tmp_path: Path) -> None:
    for attr in ("label_names", "encoder", "modality"):
        bad = _edit(_copy(ref_cache, tmp_path / attr), lambda f: f.attrs.__delitem__(attr))
        line = _one_error_line(["cache", "info", bad])
        assert f"no '{attr}' attr" in line and "rerun" in line


def test_cache_info_and_ls_show_split_sizes(ref_cache: Path) -> None:
    with h5py.File(ref_cache, "r") as f:
        split = f["split"].asstr()[...]
    counts = {s: int((split == s).sum()) for s in ("train", "dev", "test", "none")}
    r = runner.invoke(app, ["cache", "info", str(ref_cache)])
    assert r.exit_code == 0, r.output
    want = f"train {counts['train']}, dev {counts['dev']}, test {counts['test']}, none {counts['none']}"
    assert re.search(rf"^split\s+{want}$", r.stdout, re.M), r.stdout
    r = runner.invoke(app, ["cache", "ls", str(ref_cache.parent)])
    assert f"{counts['train']}/{counts['dev']}/{counts['test']}" in r.stdout, r.stdout
    assert open_info(ref_cache).n == sum(counts.values())


# ---- adversarial pass: provenance attrs checksummed, no empty .partial, non-cache inputs -----------
@pytest.mark.parametrize("attr,value", [("settings_hash", "000000000000"), ("dataset", "other"),
                                        ("missing", '{"image_file_missing": 0, "ids_first_1000": []}')])
def test_provenance_attrs_are_checksummed(attr: str, value: str, ref_cache: Path, tmp_path: Path) -> None:
    """settings_hash names runs and decides train-head's "up to date"; dataset and missing are
    what info and refusals quote: an edit to any of them is refused like any alteration."""
    cache = _copy(ref_cache, tmp_path / "c")
    args = ["train-head", "-f", f"image={cache}", "--fusion", "linear", "--max-epochs", "1", "--quiet",
            "--out", tmp_path / "runs"]
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    _edit(cache, lambda f: f.attrs.__setitem__(attr, value))
    with pytest.raises(CacheError, match="checksum mismatch in attrs"):
        verify(cache)
    line = _one_error_line(["cache", "verify", cache])
    assert "checksum mismatch" in line and str(cache) in line
    line = _one_error_line(args)  # not "up to date", not a retrain on the altered cache
    assert "checksum mismatch" in line and str(cache) in line


def test_extract_failing_before_its_first_batch_leaves_no_partial(demo_root: Path, tmp_path: Path) -> None:
    """`-o min_df=abc` fails when TF-IDF is fitted, inside the writer: the .partial folder it
    made (lock + meta.json, no batch) used to stay, and `cache ls` said "rerun to resume"."""
    line = _one_error_line(["extract", "--data", demo_root, "--encoder", "tfidf", "-o", "min_df=abc",
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


def test_non_cache_paths_are_not_called_corrupt(ref_cache: Path, tmp_path: Path) -> None:
    """A CSV, a folder or an empty file given as a cache used to get "truncated or corrupt
    ...; delete it": advice to delete the user's own data."""
    csv = tmp_path / "movies.csv"
    csv.write_text("id,title\n1,x\n")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    for cmd in ("info", "verify"):
        line = _one_error_line(["cache", cmd, csv])
        assert line.startswith(f"{csv} is not an HDF5 cache file (") and "delete" not in line
        line = _one_error_line(["cache", cmd, empty])
        assert line.startswith(f"{empty} is not an HDF5 cache file (it is empty)") and "delete" not in line
        line = _one_error_line(["cache", cmd, tmp_path])
        assert line == f"{tmp_path} is a folder; give a cache file (cache ls {tmp_path} lists them)"
    line = _one_error_line(["train-head", "-f", f"image={csv}", "--out", tmp_path / "runs"])
    assert "is not an HDF5 cache file" in line
    line = _one_error_line(["cache", "ls", csv])
    assert line.startswith(f"{csv} is a file, not a folder") and "does not exist" not in line
    # A real HDF5 file that is cut short keeps the truncated/corrupt wording.
    cut = _copy(ref_cache, tmp_path / "cut")
    cut.write_bytes(cut.read_bytes()[:2048])
    line = _one_error_line(["cache", "info", cut])
    assert "is truncated or corrupt" in line


def test_feature_specs_refuse_one_cache_under_two_names(ref_cache: Path, tmp_path: Path, monkeypatch) -> None:
    from cache.features import parse_feature_specs

    hard = tmp_path / "hard.h5"
    os.link(ref_cache, hard)
    monkeypatch.chdir(ref_cache.parent)
    for other in (str(ref_cache), f"./{ref_cache.name}", str(hard)):
        with pytest.raises(ValueError, match="image= and poster= are the same cache"):
            parse_feature_specs([f"image={ref_cache}", f"poster={other}"])
    assert set(parse_feature_specs([f"image={ref_cache}"])) == {"image"}
