"""The bad inputs of tests/test_faults.py: an Env (the shared tiny data, caches and runs plus
this case's folder) and the builders that damage a copy of something."""
from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cli import app

runner = CliRunner()


@dataclass
class Env:
    tmp: Path  # this case's folder (inputs and outputs)
    data: Path  # the tiny MM-IMDb-layout data set (shared, read-only)
    caches: dict[str, Path]  # image (toy-image), text (tfidf) caches (shared, read-only)
    run_text: Path  # a finished text-only run
    run_mm: Path  # a finished image+text run

    def copy_cache(self, m: str) -> Path:
        dst = self.tmp / self.caches[m].name
        shutil.copy(self.caches[m], dst)
        return dst

    def copy_data(self) -> Path:
        dst = self.tmp / "data"
        shutil.copytree(self.data, dst)
        return dst

    def extract(self, data: Path, *extra: Any, encoder: str = "toy-image") -> list[Any]:
        return ["extract", "--data", data, "--encoder", encoder, "--out", self.tmp / "out", "--workers", "0",
                *extra]

    def train(self, *feats: str, out: Path | None = None, extra: tuple[Any, ...] = ()) -> list[Any]:
        args: list[Any] = ["train-head", "--fusion", "mlp", "--max-epochs", "2", "--quiet",
                           "--out", out or self.tmp / "runs", *extra]
        for f in feats:
            args += ["-f", f]
        return args




# ---- helpers that damage things ---------------------------------------------------------
def xor_features(f: h5py.File) -> None:
    x = f["features"][...]
    f["features"][...] = (x.view(np.uint16) ^ np.uint16(0x0100)).view(x.dtype) if x.dtype == np.float16 \
        else x * -1.0


def table(env: Env, rows: list[dict[str, str]], name: str = "t.csv", encoding: str = "utf-8",
           bom: bool = False) -> Path:
    cols = list(rows[0])
    lines = [",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]
    p = env.tmp / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode(encoding))
    return p


def rows(n: int = 30, genres: tuple[str, ...] = ("Drama", "Comedy"), sep: str = "|") -> list[dict[str, str]]:
    splits = ["train"] * (n * 6 // 10) + ["dev"] * (n * 2 // 10)
    splits += ["test"] * (n - len(splits))
    return [{"id": f"m{i}", "text": f"movie {i} about {'love' if i % 2 else 'laughs'} and more",
             "genres": sep.join(genres[: 1 + i % 2]), "split": splits[i]} for i in range(n)]


def table_args(env: Env, path: Path, *extra: Any, id_col: str = "id",
                split: tuple[str, ...] = ("--split-col", "split")) -> list[Any]:
    return ["extract", "--data", path, "--format", "table", "--encoder", "tfidf", "-o", "min_df=1",
            "--id-col", id_col, "--text-col", "plot=text", "--label-col", "genres", *split,
            "--out", env.tmp / "out", "--workers", "0", *extra]


def poster(env: Env, fn: Callable[[Path], None]) -> Path:
    """A copy of the data set whose first poster is damaged by fn."""
    d = env.copy_data()
    fn(sorted((d / "dataset").glob("*.jpeg"))[0])
    return d


def bomb(p: Path) -> None:
    Image.new("1", (15000, 15000)).save(p.with_suffix(".png"), optimize=True)
    os.replace(p.with_suffix(".png"), p)


def plot(env: Env, text: str) -> Path:
    d = env.copy_data()
    first = sorted((d / "dataset").glob("*.json"))[0]
    meta = json.loads(first.read_text())
    meta["plot"] = [text]
    first.write_text(json.dumps(meta))
    return d


def enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of a run folder's head.pt fails as if the disk were full."""
    import torch

    real = torch.save

    def full(obj: Any, f: Any, *a: Any, **kw: Any) -> None:
        name = str(getattr(f, "name", f))  # a path or an open file
        if name.endswith("head.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", name)
        real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full)


def raw(e: Env, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    p = e.tmp / name
    p.write_bytes(text.encode(encoding))
    return p


def posterless_cache(e: Env) -> Path:
    """A toy-image cache of a copy of the data set whose posters are all gone (every row masked)."""
    d = e.copy_data()
    for p in (d / "dataset").glob("*.jpeg"):
        p.unlink()
    r = runner.invoke(app, [str(a) for a in e.extract(d)[:-2]] + ["--workers", "0", "--out", str(e.tmp / "pc")])
    assert r.exit_code == 0, r.output
    return next((e.tmp / "pc").glob("*.h5"))


def touch(p: Path) -> Path:
    p.write_text("x")
    return p


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def attr(name: str, value: Any) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        f.attrs[name] = value
    return fn


def truncate(p: Path) -> Path:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def truncated_run(e: Env) -> Path:
    dst = e.tmp / "run"
    shutil.copytree(e.run_text, dst)
    data = (dst / "head.pt").read_bytes()
    (dst / "head.pt").write_bytes(data[: len(data) // 3])
    return dst


def first_poster(e: Env) -> Path:
    return sorted((e.data / "dataset").glob("*.jpeg"))[0]


def bomb_file(e: Env) -> Path:
    p = e.tmp / "bomb.png"
    Image.new("1", (15000, 15000)).save(p, optimize=True)
    return p


def predict_csv(e: Env) -> Path:
    good = first_poster(e)
    p = e.tmp / "items.csv"
    p.write_text("id,image,text\n"
                 f"ok,{good},a haunted house at night\n"
                 f"missing,{e.tmp / 'nope.jpg'},\n"
                 f"garbage,{write(e.tmp / 'g.jpg', 'nope')},\n"
                 "empty,, \n")
    return p
