"""Reliability harness: a table of bad inputs (issue 9).

Each case builds one bad input in tmp_path and runs one command through the CLI. A case is
either REFUSED (exit code != 0, exactly one message line on stderr, starting `error:`, no
traceback) or MASKED (exit code 0, the bad item masked and counted in the output). Either
way, nothing is left half-written: no temporary files or folders, no unfinished caches
(unless the case expects a resumable one) and no file that existed before was changed.
Progress-bar lines (tqdm) on stderr are not messages and are ignored.
"""
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

REFUSED, MASKED = "refused", "masked"
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
def _h5_edit(path: Path, fn: Callable[[h5py.File], None]) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _xor_features(f: h5py.File) -> None:
    x = f["features"][...]
    f["features"][...] = (x.view(np.uint16) ^ np.uint16(0x0100)).view(x.dtype) if x.dtype == np.float16 \
        else x * -1.0


def _set(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        f[name][...] = value(f[name][...])
    return fn


def _table(env: Env, rows: list[dict[str, str]], name: str = "t.csv", encoding: str = "utf-8",
           bom: bool = False) -> Path:
    cols = list(rows[0])
    lines = [",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]
    p = env.tmp / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode(encoding))
    return p


def _rows(n: int = 30, genres: tuple[str, ...] = ("Drama", "Comedy"), sep: str = "|") -> list[dict[str, str]]:
    splits = ["train"] * (n * 6 // 10) + ["dev"] * (n * 2 // 10)
    splits += ["test"] * (n - len(splits))
    return [{"id": f"m{i}", "text": f"movie {i} about {'love' if i % 2 else 'laughs'} and more",
             "genres": sep.join(genres[: 1 + i % 2]), "split": splits[i]} for i in range(n)]


def _table_args(env: Env, path: Path, *extra: Any, id_col: str = "id",
                split: tuple[str, ...] = ("--split-col", "split")) -> list[Any]:
    return ["extract", "--data", path, "--format", "table", "--encoder", "tfidf", "-o", "min_df=1",
            "--id-col", id_col, "--text-col", "plot=text", "--label-col", "genres", *split,
            "--out", env.tmp / "out", "--workers", "0", *extra]


def _poster(env: Env, fn: Callable[[Path], None]) -> Path:
    """A copy of the data set whose first poster is damaged by fn."""
    d = env.copy_data()
    fn(sorted((d / "dataset").glob("*.jpeg"))[0])
    return d


def _bomb(p: Path) -> None:
    Image.new("1", (15000, 15000)).save(p.with_suffix(".png"), optimize=True)
    os.replace(p.with_suffix(".png"), p)


def _plot(env: Env, text: str) -> Path:
    d = env.copy_data()
    first = sorted((d / "dataset").glob("*.json"))[0]
    meta = json.loads(first.read_text())
    meta["plot"] = [text]
    first.write_text(json.dumps(meta))
    return d


def _enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of a run folder's head.pt fails as if the disk were full."""
    import torch

    real = torch.save

    def full(obj: Any, f: Any, *a: Any, **kw: Any) -> None:
        name = str(getattr(f, "name", f))  # a path or an open file
        if name.endswith("head.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", name)
        real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full)


# ---- the table ----------------------------------------------------------------------------
# (id, expected outcome, build args from the env (and monkeypatch), substring the message/output has)
Case = tuple[str, str, Callable[[Env, pytest.MonkeyPatch], list[Any]], str]
CASES: list[Case] = [
    # extract: data
    ("extract-no-data", REFUSED, lambda e, m: e.extract(e.tmp / "nope"), "nope"),
    ("extract-unknown-encoder", REFUSED, lambda e, m: e.extract(e.data, encoder="nosuch"), "Unknown encoder"),
    ("extract-out-is-file", REFUSED,
     lambda e, m: [*e.extract(e.data)[:-4], "--out", _touch(e.tmp / "afile"), "--workers", "0"], "afile"),
    ("extract-batch-size-0", REFUSED, lambda e, m: e.extract(e.data, "--batch-size", "0"), "--batch-size"),
    ("extract-missing-poster", MASKED, lambda e, m: e.extract(_poster(e, Path.unlink)), "image_file_missing="),
    ("extract-garbage-poster", MASKED,
     lambda e, m: e.extract(_poster(e, lambda p: p.write_bytes(b"not a jpeg"))), "image_corrupt="),
    ("extract-truncated-poster", MASKED,
     lambda e, m: e.extract(_poster(e, lambda p: p.write_bytes(p.read_bytes()[:200]))), "image_corrupt="),
    ("extract-empty-poster-file", MASKED,
     lambda e, m: e.extract(_poster(e, lambda p: p.write_bytes(b""))), "image_corrupt="),
    ("extract-decompression-bomb", MASKED, lambda e, m: e.extract(_poster(e, _bomb)), "image_corrupt="),
    ("extract-empty-plot", MASKED,
     lambda e, m: e.extract(_plot(e, "   "), "-o", "min_df=1", encoder="tfidf"), "empty_text="),
    ("extract-zero-width-plot", MASKED,
     lambda e, m: e.extract(_plot(e, "\u200b\u200c\ufeff"), "-o", "min_df=1", encoder="tfidf"), "empty_text="),
    ("extract-split-json-garbage", REFUSED,
     lambda e, m: e.extract(_write(e.copy_data() / "split.json", "{nope")), "split.json"),
    # extract: tables
    ("table-not-utf8", REFUSED,
     lambda e, m: _table_args(e, _table(e, [*_rows()[:3], {"id": "x", "text": "caf\xe9", "genres": "Drama",
                                                           "split": "train"}], encoding="latin-1")), "t.csv"),
    ("table-missing-id-col", REFUSED,
     lambda e, m: _table_args(e, _table(e, _rows()), id_col="nosuch"), "nosuch"),
    ("table-no-labels", REFUSED,
     lambda e, m: _table_args(e, _table(e, [{**r, "genres": ""} for r in _rows()])), "label"),
    ("table-no-train-rows", REFUSED,
     lambda e, m: _table_args(e, _table(e, [{**r, "split": "test"} for r in _rows()])), "train"),
    ("table-wrong-label-sep", REFUSED,
     lambda e, m: _table_args(e, _table(e, _rows(sep=";"))), "--label-sep"),
    ("table-duplicate-id", REFUSED,
     lambda e, m: _table_args(e, _table(e, [*_rows(), _rows()[0]])), "duplicate id"),
    ("table-bad-split-ratios", REFUSED,
     lambda e, m: _table_args(e, _table(e, _rows()), split=("--split-seed", "1", "--split-ratios", "0.5,0.1")),
     "--split-ratios"),
    ("table-duplicate-column", REFUSED,
     lambda e, m: _table_args(e, _raw(e, "id,text,text,genres,split\nm1,a,b,Drama,train\n")), "text"),
    ("jsonl-duplicate-key", REFUSED,
     lambda e, m: _table_args(e, _raw(e, '{"id": "m1", "text": "a", "text": "b", "genres": "Drama", "split": "train"}\n',
                                      "t.jsonl")), "t.jsonl:1"),
    ("table-ragged-row", REFUSED,
     lambda e, m: _table_args(e, _raw(e, "id,text,genres,split\nm1,a,Drama,train,extra\n")), "t.csv:2"),
    ("table-mixed-label-seps", REFUSED,
     lambda e, m: _table_args(e, _table(e, [{**r, "genres": '"Drama, Comedy"'} if i % 5 == 0 else r
                                            for i, r in enumerate(_rows())])), "--label-sep"),
    ("table-missing-image-dir", REFUSED,
     lambda e, m: _table_args(e, _table(e, _rows()), "--image-dir", e.tmp / "noimgs"), "noimgs"),
    ("table-huge-cell", MASKED,
     lambda e, m: _table_args(e, _table(e, [*_rows()[:-1], {**_rows()[-1], "text": "word " * 400_000}])),
     "wrote"),
    ("extract-bad-encoder-option", REFUSED,
     lambda e, m: e.extract(e.data, "-o", "min_df=abc", encoder="tfidf"), "min_df"),
    ("extract-plot-without-known-word", MASKED,
     lambda e, m: e.extract(_plot(e, "zzqx qqzx"), "-o", "min_df=1", encoder="tfidf"), "text_no_vocabulary_word="),
    # cache integrity
    ("verify-xor-features", REFUSED,
     lambda e, m: ["cache", "verify", _h5_edit(e.copy_cache("image"), _xor_features)], "checksum"),
    ("verify-inverted-labels", REFUSED,
     lambda e, m: ["cache", "verify", _h5_edit(e.copy_cache("image"), _set("labels", lambda y: 1 - y))],
     "checksum"),
    ("verify-truncated", REFUSED,
     lambda e, m: ["cache", "verify", _truncate(e.copy_cache("image"))], "corrupt"),
    ("verify-not-hdf5", REFUSED, lambda e, m: ["cache", "verify", _write(e.tmp / "x.h5", "hello")], "x.h5"),
    ("info-no-label-names", REFUSED,
     lambda e, m: ["cache", "info", _h5_edit(e.copy_cache("image"), lambda f: f.attrs.__delitem__("label_names"))],
     "label_names"),
    ("train-xor-features", REFUSED,
     lambda e, m: e.train(f"image={_h5_edit(e.copy_cache('image'), _xor_features)}"), "checksum"),
    ("train-checksum-attr", REFUSED,
     lambda e, m: e.train(f"image={_h5_edit(e.copy_cache('image'), _attr('checksum', '0' * 16))}"), "checksum"),
    ("train-present-zeroed", REFUSED,
     lambda e, m: e.train(f"image={_h5_edit(e.copy_cache('image'), _set('present', np.zeros_like))}"), ""),
    ("train-inverted-labels", REFUSED,
     lambda e, m: e.train(f"image={_h5_edit(e.copy_cache('image'), _set('labels', lambda y: 1 - y))}"),
     "checksum"),
    ("train-settings-hash-edited", REFUSED,
     lambda e, m: e.train(f"image={_h5_edit(e.copy_cache('image'), _attr('settings_hash', 'deadbeef0000'))}"),
     "checksum"),
    ("info-on-a-csv", REFUSED, lambda e, m: ["cache", "info", _table(e, _rows())], "not an HDF5"),
    # train-head: wrong use
    ("train-bad-loss-option", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", extra=("--loss", "focal", "--loss-opt", "gamma=abc")),
     "gamma"),
    ("train-modality-never-present", REFUSED, lambda e, m: e.train(f"image={_posterless_cache(e)}"), "no train row"),
    ("train-same-cache-twice", REFUSED,
     lambda e, m: e.train(f"text={e.caches['text']}", f"text2={e.caches['text']}"), "same cache"),
    ("train-image-cache-as-text", REFUSED, lambda e, m: e.train(f"text={e.caches['image']}"), "image"),
    ("train-hidden-0", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", extra=("-o", "hidden=0")), "hidden"),
    ("train-unknown-head-opt", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", extra=("-o", "nosuch=1")), "nosuch"),
    ("train-unknown-fusion", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", extra=("--fusion", "gmux")), "gmux"),
    ("train-out-is-file", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", out=_touch(e.tmp / "afile")), "afile"),
    ("train-disk-full", REFUSED,
     lambda e, m: (_enospc(m), e.train(f"image={e.caches['image']}"))[1], "No space left"),
    ("train-missing-cache", REFUSED, lambda e, m: e.train(f"image={e.tmp / 'nope.h5'}"), "nope.h5"),
    # predict
    ("predict-no-run", REFUSED, lambda e, m: ["predict", e.tmp / "norun", "--text", "x"], "norun"),
    ("predict-truncated-head", REFUSED,
     lambda e, m: ["predict", _truncated_run(e), "--text", "a love story"], "head.pt"),
    ("predict-empty-text", REFUSED, lambda e, m: ["predict", e.run_text, "--text", " \u200b "], "text"),
    ("predict-wrong-modality", REFUSED,
     lambda e, m: ["predict", e.run_text, "--image", _first_poster(e)], "text"),
    ("predict-bomb-image", REFUSED,
     lambda e, m: ["predict", e.run_mm, "--image", _bomb_file(e)], "too large"),
    ("predict-csv-bad-rows", MASKED,
     lambda e, m: ["predict", e.run_mm, "--csv", _predict_csv(e), "--out", e.tmp / "pred.csv"], "skipped"),
    ("predict-csv-not-utf8", REFUSED,
     lambda e, m: ["predict", e.run_text, "--csv", _raw(e, "id,image,text\nx,,caf\xe9 au lait\n", "l1.csv",
                                                        "latin-1")], "l1.csv:2"),
    ("predict-csv-repeated-column", REFUSED,
     lambda e, m: ["predict", e.run_text, "--csv", _raw(e, "id,image,text,text\nx,,a,b\n", "d.csv")],
     "more than once"),
    ("predict-text-without-known-word", REFUSED,
     lambda e, m: ["predict", e.run_text, "--text", "zzqx qqzx"], "nothing for the head"),
    # sweep / compare / report
    ("sweep-unknown-head", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={e.caches['image']}", "--fusion", "gmux"], "gmux"),
    ("sweep-altered-cache", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={_h5_edit(e.copy_cache('image'), _xor_features)}",
                   "--fusion", "mlp"], "checksum"),
    ("sweep-out-is-file", REFUSED,
     lambda e, m: ["sweep", "--out", _touch(e.tmp / "afile"), "-f", f"image={e.caches['image']}", "--fusion", "mlp"],
     "afile"),
    ("sweep-seeds-empty-range", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={e.caches['image']}", "--seeds", "3-1"],
     "empty range"),
    ("runs-ls-a-file", REFUSED, lambda e, m: ["runs", "ls", _touch(e.tmp / "afile")], "is a file"),
    ("compare-not-runs", REFUSED, lambda e, m: ["compare", e.tmp / "a", e.tmp / "b"], "a"),
    ("report-not-a-run", REFUSED, lambda e, m: ["report", e.tmp / "nothing"], "nothing"),
]


def _raw(e: Env, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    p = e.tmp / name
    p.write_bytes(text.encode(encoding))
    return p


def _posterless_cache(e: Env) -> Path:
    """A toy-image cache of a copy of the data set whose posters are all gone (every row masked)."""
    d = e.copy_data()
    for p in (d / "dataset").glob("*.jpeg"):
        p.unlink()
    r = runner.invoke(app, [str(a) for a in e.extract(d)[:-2]] + ["--workers", "0", "--out", str(e.tmp / "pc")])
    assert r.exit_code == 0, r.output
    return next((e.tmp / "pc").glob("*.h5"))


def _touch(p: Path) -> Path:
    p.write_text("x")
    return p


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _attr(name: str, value: Any) -> Callable[[h5py.File], None]:
    def fn(f: h5py.File) -> None:
        f.attrs[name] = value
    return fn


def _truncate(p: Path) -> Path:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _truncated_run(e: Env) -> Path:
    dst = e.tmp / "run"
    shutil.copytree(e.run_text, dst)
    data = (dst / "head.pt").read_bytes()
    (dst / "head.pt").write_bytes(data[: len(data) // 3])
    return dst


def _first_poster(e: Env) -> Path:
    return sorted((e.data / "dataset").glob("*.jpeg"))[0]


def _bomb_file(e: Env) -> Path:
    p = e.tmp / "bomb.png"
    Image.new("1", (15000, 15000)).save(p, optimize=True)
    return p


def _predict_csv(e: Env) -> Path:
    good = _first_poster(e)
    p = e.tmp / "items.csv"
    p.write_text("id,image,text\n"
                 f"ok,{good},a haunted house at night\n"
                 f"missing,{e.tmp / 'nope.jpg'},\n"
                 f"garbage,{_write(e.tmp / 'g.jpg', 'nope')},\n"
                 "empty,, \n")
    return p


# ---- fixtures and the check ---------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tiny_caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("fault_runs")
    made = []
    for name, feats in (("text", [f"text={tiny_caches['text']}"]),
                        ("mm", [f"image={tiny_caches['image']}", f"text={tiny_caches['text']}"])):
        args = ["train-head", "--fusion", "mlp" if name == "text" else "concat", "--max-epochs", "3", "--quiet",
                "--out", out, "--name", name]
        for f in feats:
            args += ["-f", f]
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        made.append(out / name)
    return made[0], made[1]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _messages(stderr: str) -> list[str]:
    """stderr lines that are not progress bars (tqdm draws '...| n/N [..]' with carriage returns)."""
    out = []
    for line in stderr.replace("\r", "\n").splitlines():
        if line.strip() and not ("|" in line and ("it/s" in line or "/s]" in line or "%|" in line or "s/it" in line)):
            out.append(line)
    return out


def _half_written(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if ".tmp-" in p.name or p.name.endswith(".tmp") or p.name.endswith(".partial")]


@pytest.mark.parametrize("case_id,expected,build,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id: str, expected: str, build: Callable[[Env, pytest.MonkeyPatch], list[Any]],
                   expect: str, tiny_data: Path, tiny_caches: dict[str, Path], runs: tuple[Path, Path],
                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Env(tmp_path, tiny_data, tiny_caches, *runs)
    args = [str(a) for a in build(env, monkeypatch)]
    before = _snapshot(tmp_path)
    shared_before = {p: _snapshot(p) for p in (tiny_data, tiny_caches["image"].parent, runs[0].parent)}
    r = runner.invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"{case_id}: uncaught {type(r.exception).__name__}: {r.exception}"
    msgs = _messages(r.stderr)
    if expected == REFUSED:
        assert r.exit_code != 0, f"{case_id}: accepted\n{r.output}"
        assert len(msgs) == 1 and msgs[0].startswith("error: "), f"{case_id}: stderr {msgs}"
        assert expect in msgs[0], f"{case_id}: {msgs[0]!r} does not mention {expect!r}"
    else:
        assert r.exit_code == 0, f"{case_id}: {r.output}"
        assert expect in r.output, f"{case_id}: {expect!r} not in\n{r.output}"
    assert _half_written(tmp_path) == [], f"{case_id}: half-written {_half_written(tmp_path)}"
    after = _snapshot(tmp_path)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert changed == [], f"{case_id}: changed existing files {changed}"
    for p, snap in shared_before.items():
        assert _snapshot(p) == snap, f"{case_id}: changed shared inputs in {p}"

