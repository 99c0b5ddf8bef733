"""Helpers shared by the cache hardening tests (test_harden_cache.py, test_harden_shards.py);
their fixtures demo_root and ref_cache are in conftest.py."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cache.store import write_cache_file
from cli import app
from extract.datasets import DatasetConfig
from extract.run import ExtractConfig

runner = CliRunner()


def extract_cfg(root: Path, out: Path, **kw: Any) -> ExtractConfig:
    base = dict(dataset=DatasetConfig(path=root, format="mmimdb"), encoder="toy-image", out=out,
                batch_size=8, workers=0, dtype="float32")
    base.update(kw)
    return ExtractConfig(**base)


def assert_same_cache(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb)
        for k in fa:
            np.testing.assert_array_equal(fa[k][...], fb[k][...], err_msg=k)  # bit-identical


def copy_cache(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, dst_dir / src.name))


def edit_h5(path: Path, fn: Callable[[h5py.File], None]) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def set_dataset(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        f[name][...] = value(f[name][...])
    return fn


def xor_features(f: h5py.File) -> None:
    x = f["features"][...]
    f["features"][...] = (x.view(np.uint32) ^ np.uint32(0x00010000)).view(np.float32)


def duplicate_first_id(f: h5py.File) -> None:
    ids = f["ids"].asstr()[...]
    ids[1] = ids[0]
    f["ids"][...] = ids.astype(object)


def one_error_line(args: list[Any]) -> str:
    """Run the CLI; assert exit 2, no traceback and exactly one line on stderr; return it."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip() and "|" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0][len("error: "):]


def small_cache(path: Path, n: int = 30, ids: list[str] | None = None, nan_rows: tuple[int, ...] = (),
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
