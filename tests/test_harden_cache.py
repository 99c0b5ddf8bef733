"""Issue 9, cache integrity: checksums over every dataset and the number-changing attrs,
checked on every load; structure (unique ids, NaN rows); attrs and split sizes; paths that
are not caches. Batch files, leftovers, the lock and filesystem errors: test_harden_shards.py."""
from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cache.features import load_features
from cache.store import CacheError
from cache.read import open_info, verify
from cli import app
from tests.cache_helpers import (copy_cache, duplicate_first_id, edit_h5, one_error_line, set_dataset, small_cache,
                                 xor_features)

runner = CliRunner()


# ---- items 1-3: integrity on every load ---------------------------------------------------
ALTERATIONS = {
    "xor-features": (xor_features, "checksum"),
    "checksum-attr": (lambda f: f.attrs.__setitem__("checksum", "0" * 16), "checksum"),
    "zeroed-present": (set_dataset("present", np.zeros_like), "checksum"),
    "inverted-labels": (set_dataset("labels", lambda y: 1 - y), "checksum"),
    "duplicated-id": (duplicate_first_id, "checksum"),
    "no-label-names": (lambda f: f.attrs.__delitem__("label_names"), "no 'label_names' attr"),
    "old-format": (lambda f: f.attrs.__setitem__("format_version", 1), "has cache format 1"),
}


@pytest.mark.parametrize("case", sorted(ALTERATIONS))
def test_altered_cache_is_refused_by_verify_load_and_train_head(case: str, ref_cache: Path,
                                                                tmp_path: Path) -> None:
    """verify, load_features (train-head, sweep) and the train-head CLI all refuse an altered
    cache, with the same line; today train-head trains on it with exit 0."""
    fn, expect = ALTERATIONS[case]
    bad = edit_h5(copy_cache(ref_cache, tmp_path), fn)
    with pytest.raises(CacheError) as by_verify:
        verify(bad)
    msg = str(by_verify.value)
    assert expect in msg and str(bad) in msg and "\n" not in msg
    with pytest.raises(CacheError) as by_load:
        load_features({"image": bad})
    assert str(by_load.value) == msg
    line = one_error_line(["train-head", "-f", f"image={bad}", "--fusion", "linear", "--max-epochs", "1",
                            "--quiet", "--out", tmp_path / "runs"])
    assert line == msg
    assert not list((tmp_path / "runs").glob("*/metrics.json"))


@pytest.mark.parametrize("name", ["ids", "labels", "split", "present", "features", "tokens", "token_mask",
                                  "extra_state", "label_names", "encoder", "weights", "preprocess", "options",
                                  "modality", "text_field", "dataset_fingerprint"])
def test_checksum_covers_every_dataset_and_number_changing_attr(name: str, tmp_path: Path) -> None:
    path = small_cache(tmp_path / "c.h5", tokens=True)
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

    edit_h5(path, alter)
    with pytest.raises(CacheError, match="checksum mismatch"):
        verify(path)


def test_duplicate_ids_and_nan_rows_refused_even_with_a_valid_checksum(tmp_path: Path) -> None:
    """Structure checks, not only checksums: a writer that stored a duplicated id or NaN in a
    row marked present makes a cache no load accepts (today: trains, 'probs contain NaN')."""
    dup = small_cache(tmp_path / "dup.h5", ids=["m0", "m0", *[f"m{i}" for i in range(2, 30)]])
    with pytest.raises(CacheError, match=r"ids appear more than once \(e.g. 'm0'\)"):
        verify(dup)
    nan = small_cache(tmp_path / "nan.h5", nan_rows=(3, 7))
    with pytest.raises(CacheError) as e:
        load_features({"image": nan})
    msg = str(e.value)
    assert str(nan) in msg and "2 rows marked present have NaN/inf" in msg and "m3, m7" in msg
    line = one_error_line(["train-head", "-f", f"image={nan}", "--fusion", "linear", "--max-epochs", "1",
                            "--quiet", "--out", tmp_path / "runs"])
    assert line == msg


def test_sources_record_absolute_cache_paths(ref_cache: Path, tmp_path: Path, monkeypatch) -> None:
    local = copy_cache(ref_cache, tmp_path / "caches")
    monkeypatch.chdir(tmp_path)
    fs = load_features({"image": Path("caches") / local.name})
    assert fs.sources["image"]["path"] == str(local.resolve())


# ---- items 12, 13: attrs and split sizes ---------------------------------------------------------
def test_missing_required_attr_names_it(ref_cache: Path, tmp_path: Path) -> None:
    for attr in ("label_names", "encoder", "modality"):
        bad = edit_h5(copy_cache(ref_cache, tmp_path / attr), lambda f: f.attrs.__delitem__(attr))
        line = one_error_line(["cache", "info", bad])
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
    cache = copy_cache(ref_cache, tmp_path / "c")
    args = ["train-head", "-f", f"image={cache}", "--fusion", "linear", "--max-epochs", "1", "--quiet",
            "--out", tmp_path / "runs"]
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    edit_h5(cache, lambda f: f.attrs.__setitem__(attr, value))
    with pytest.raises(CacheError, match="checksum mismatch in attrs"):
        verify(cache)
    line = one_error_line(["cache", "verify", cache])
    assert "checksum mismatch" in line and str(cache) in line
    line = one_error_line(args)  # not "up to date", not a retrain on the altered cache
    assert "checksum mismatch" in line and str(cache) in line


def test_non_cache_paths_are_not_called_corrupt(ref_cache: Path, tmp_path: Path) -> None:
    """A CSV, a folder or an empty file given as a cache used to get "truncated or corrupt
    ...; delete it": advice to delete the user's own data."""
    csv = tmp_path / "movies.csv"
    csv.write_text("id,title\n1,x\n")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    for cmd in ("info", "verify"):
        line = one_error_line(["cache", cmd, csv])
        assert line.startswith(f"{csv} is not an HDF5 cache file (") and "delete" not in line
        line = one_error_line(["cache", cmd, empty])
        assert line.startswith(f"{empty} is not an HDF5 cache file (it is empty)") and "delete" not in line
        line = one_error_line(["cache", cmd, tmp_path])
        assert line == f"{tmp_path} is a folder; give a cache file (cache ls {tmp_path} lists them)"
    line = one_error_line(["train-head", "-f", f"image={csv}", "--out", tmp_path / "runs"])
    assert "is not an HDF5 cache file" in line
    line = one_error_line(["cache", "ls", csv])
    assert line.startswith(f"{csv} is a file, not a folder") and "does not exist" not in line
    # A real HDF5 file that is cut short keeps the truncated/corrupt wording.
    cut = copy_cache(ref_cache, tmp_path / "cut")
    cut.write_bytes(cut.read_bytes()[:2048])
    line = one_error_line(["cache", "info", cut])
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
