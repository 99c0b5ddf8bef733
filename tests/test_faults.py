"""Reliability harness: a table of bad inputs (issue 9).

Each case builds one bad input in tmp_path and runs one command through the CLI. A case is
either REFUSED (exit code != 0, exactly one message line on stderr, starting `error:`, no
traceback) or MASKED (exit code 0, the bad item masked and counted in the output). Either
way, nothing is left half-written: no temporary files or folders, no unfinished caches
(unless the case expects a resumable one) and no file that existed before was changed.
Progress-bar lines (tqdm) on stderr are not messages and are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests.cache_helpers import edit_h5, set_dataset
from tests.fault_inputs import (Env, attr, bomb, bomb_file, enospc, first_poster, plot, poster, posterless_cache,
                                predict_csv, raw, rows, table, table_args, touch, truncate, truncated_run, write,
                                xor_features)

REFUSED, MASKED = "refused", "masked"
runner = CliRunner()


# ---- the table ----------------------------------------------------------------------------
# (id, expected outcome, build args from the env (and monkeypatch), substring the message/output has)
Case = tuple[str, str, Callable[[Env, pytest.MonkeyPatch], list[Any]], str]
CASES: list[Case] = [
    # extract: data
    ("extract-no-data", REFUSED, lambda e, m: e.extract(e.tmp / "nope"), "nope"),
    ("extract-unknown-encoder", REFUSED, lambda e, m: e.extract(e.data, encoder="nosuch"), "Unknown encoder"),
    ("extract-out-is-file", REFUSED,
     lambda e, m: [*e.extract(e.data)[:-4], "--out", touch(e.tmp / "afile"), "--workers", "0"], "afile"),
    ("extract-batch-size-0", REFUSED, lambda e, m: e.extract(e.data, "--batch-size", "0"), "--batch-size"),
    ("extract-missing-poster", MASKED, lambda e, m: e.extract(poster(e, Path.unlink)), "image_file_missing="),
    ("extract-garbage-poster", MASKED,
     lambda e, m: e.extract(poster(e, lambda p: p.write_bytes(b"not a jpeg"))), "image_corrupt="),
    ("extract-truncated-poster", MASKED,
     lambda e, m: e.extract(poster(e, lambda p: p.write_bytes(p.read_bytes()[:200]))), "image_corrupt="),
    ("extract-empty-poster-file", MASKED,
     lambda e, m: e.extract(poster(e, lambda p: p.write_bytes(b""))), "image_corrupt="),
    ("extract-decompression-bomb", MASKED, lambda e, m: e.extract(poster(e, bomb)), "image_corrupt="),
    ("extract-empty-plot", MASKED,
     lambda e, m: e.extract(plot(e, "   "), "-o", "min_df=1", encoder="tfidf"), "empty_text="),
    ("extract-zero-width-plot", MASKED,
     lambda e, m: e.extract(plot(e, "\u200b\u200c\ufeff"), "-o", "min_df=1", encoder="tfidf"), "empty_text="),
    ("extract-split-json-garbage", REFUSED,
     lambda e, m: e.extract(write(e.copy_data() / "split.json", "{nope")), "split.json"),
    # extract: tables
    ("table-not-utf8", REFUSED,
     lambda e, m: table_args(e, table(e, [*rows()[:3], {"id": "x", "text": "caf\xe9", "genres": "Drama",
                                                           "split": "train"}], encoding="latin-1")), "t.csv"),
    ("table-missing-id-col", REFUSED,
     lambda e, m: table_args(e, table(e, rows()), id_col="nosuch"), "nosuch"),
    ("table-no-labels", REFUSED,
     lambda e, m: table_args(e, table(e, [{**r, "genres": ""} for r in rows()])), "label"),
    ("table-no-train-rows", REFUSED,
     lambda e, m: table_args(e, table(e, [{**r, "split": "test"} for r in rows()])), "train"),
    ("table-wrong-label-sep", REFUSED,
     lambda e, m: table_args(e, table(e, rows(sep=";"))), "--label-sep"),
    ("table-duplicate-id", REFUSED,
     lambda e, m: table_args(e, table(e, [*rows(), rows()[0]])), "duplicate id"),
    ("table-bad-split-ratios", REFUSED,
     lambda e, m: table_args(e, table(e, rows()), split=("--split-seed", "1", "--split-ratios", "0.5,0.1")),
     "--split-ratios"),
    ("table-duplicate-column", REFUSED,
     lambda e, m: table_args(e, raw(e, "id,text,text,genres,split\nm1,a,b,Drama,train\n")), "text"),
    ("jsonl-duplicate-key", REFUSED,
     lambda e, m: table_args(e, raw(e, '{"id": "m1", "text": "a", "text": "b", "genres": "Drama", "split": "train"}\n',
                                      "t.jsonl")), "t.jsonl:1"),
    ("table-ragged-row", REFUSED,
     lambda e, m: table_args(e, raw(e, "id,text,genres,split\nm1,a,Drama,train,extra\n")), "t.csv:2"),
    ("table-mixed-label-seps", REFUSED,
     lambda e, m: table_args(e, table(e, [{**r, "genres": '"Drama, Comedy"'} if i % 5 == 0 else r
                                            for i, r in enumerate(rows())])), "--label-sep"),
    ("table-missing-image-dir", REFUSED,
     lambda e, m: table_args(e, table(e, rows()), "--image-dir", e.tmp / "noimgs"), "noimgs"),
    ("table-huge-cell", MASKED,
     lambda e, m: table_args(e, table(e, [*rows()[:-1], {**rows()[-1], "text": "word " * 400_000}])),
     "wrote"),
    ("extract-bad-encoder-option", REFUSED,
     lambda e, m: e.extract(e.data, "-o", "min_df=abc", encoder="tfidf"), "min_df"),
    ("extract-plot-without-known-word", MASKED,
     lambda e, m: e.extract(plot(e, "zzqx qqzx"), "-o", "min_df=1", encoder="tfidf"), "text_no_vocabulary_word="),
    # cache integrity
    ("verify-xor-features", REFUSED,
     lambda e, m: ["cache", "verify", edit_h5(e.copy_cache("image"), xor_features)], "checksum"),
    ("verify-inverted-labels", REFUSED,
     lambda e, m: ["cache", "verify", edit_h5(e.copy_cache("image"), set_dataset("labels", lambda y: 1 - y))],
     "checksum"),
    ("verify-truncated", REFUSED,
     lambda e, m: ["cache", "verify", truncate(e.copy_cache("image"))], "corrupt"),
    ("verify-not-hdf5", REFUSED, lambda e, m: ["cache", "verify", write(e.tmp / "x.h5", "hello")], "x.h5"),
    ("info-no-label-names", REFUSED,
     lambda e, m: ["cache", "info", edit_h5(e.copy_cache("image"), lambda f: f.attrs.__delitem__("label_names"))],
     "label_names"),
    ("train-xor-features", REFUSED,
     lambda e, m: e.train(f"image={edit_h5(e.copy_cache('image'), xor_features)}"), "checksum"),
    ("train-checksum-attr", REFUSED,
     lambda e, m: e.train(f"image={edit_h5(e.copy_cache('image'), attr('checksum', '0' * 16))}"), "checksum"),
    ("train-present-zeroed", REFUSED,
     lambda e, m: e.train(f"image={edit_h5(e.copy_cache('image'), set_dataset('present', np.zeros_like))}"), ""),
    ("train-inverted-labels", REFUSED,
     lambda e, m: e.train(f"image={edit_h5(e.copy_cache('image'), set_dataset('labels', lambda y: 1 - y))}"),
     "checksum"),
    ("train-settings-hash-edited", REFUSED,
     lambda e, m: e.train(f"image={edit_h5(e.copy_cache('image'), attr('settings_hash', 'deadbeef0000'))}"),
     "checksum"),
    ("info-on-a-csv", REFUSED, lambda e, m: ["cache", "info", table(e, rows())], "not an HDF5"),
    # train-head: wrong use
    ("train-bad-loss-option", REFUSED,
     lambda e, m: e.train(f"image={e.caches['image']}", extra=("--loss", "focal", "--loss-opt", "gamma=abc")),
     "gamma"),
    ("train-modality-never-present", REFUSED, lambda e, m: e.train(f"image={posterless_cache(e)}"), "no train row"),
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
     lambda e, m: e.train(f"image={e.caches['image']}", out=touch(e.tmp / "afile")), "afile"),
    ("train-disk-full", REFUSED,
     lambda e, m: (enospc(m), e.train(f"image={e.caches['image']}"))[1], "No space left"),
    ("train-missing-cache", REFUSED, lambda e, m: e.train(f"image={e.tmp / 'nope.h5'}"), "nope.h5"),
    # predict
    ("predict-no-run", REFUSED, lambda e, m: ["predict", e.tmp / "norun", "--text", "x"], "norun"),
    ("predict-truncated-head", REFUSED,
     lambda e, m: ["predict", truncated_run(e), "--text", "a love story"], "head.pt"),
    ("predict-empty-text", REFUSED, lambda e, m: ["predict", e.run_text, "--text", " \u200b "], "text"),
    ("predict-wrong-modality", REFUSED,
     lambda e, m: ["predict", e.run_text, "--image", first_poster(e)], "text"),
    ("predict-bomb-image", REFUSED,
     lambda e, m: ["predict", e.run_mm, "--image", bomb_file(e)], "too large"),
    ("predict-csv-bad-rows", MASKED,
     lambda e, m: ["predict", e.run_mm, "--csv", predict_csv(e), "--out", e.tmp / "pred.csv"], "skipped"),
    ("predict-csv-not-utf8", REFUSED,
     lambda e, m: ["predict", e.run_text, "--csv", raw(e, "id,image,text\nx,,caf\xe9 au lait\n", "l1.csv",
                                                        "latin-1")], "l1.csv:2"),
    ("predict-csv-repeated-column", REFUSED,
     lambda e, m: ["predict", e.run_text, "--csv", raw(e, "id,image,text,text\nx,,a,b\n", "d.csv")],
     "more than once"),
    ("predict-text-without-known-word", REFUSED,
     lambda e, m: ["predict", e.run_text, "--text", "zzqx qqzx"], "nothing for the head"),
    # sweep / compare / report
    ("sweep-unknown-head", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={e.caches['image']}", "--fusion", "gmux"], "gmux"),
    ("sweep-altered-cache", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={edit_h5(e.copy_cache('image'), xor_features)}",
                   "--fusion", "mlp"], "checksum"),
    ("sweep-out-is-file", REFUSED,
     lambda e, m: ["sweep", "--out", touch(e.tmp / "afile"), "-f", f"image={e.caches['image']}", "--fusion", "mlp"],
     "afile"),
    ("sweep-seeds-empty-range", REFUSED,
     lambda e, m: ["sweep", "--out", e.tmp / "sw", "-f", f"image={e.caches['image']}", "--seeds", "3-1"],
     "empty range"),
    ("runs-ls-a-file", REFUSED, lambda e, m: ["runs", "ls", touch(e.tmp / "afile")], "is a file"),
    ("compare-not-runs", REFUSED, lambda e, m: ["compare", e.tmp / "a", e.tmp / "b"], "a"),
    ("report-not-a-run", REFUSED, lambda e, m: ["report", e.tmp / "nothing"], "nothing"),
]


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
