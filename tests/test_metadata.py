"""Metadata: entity lists, --meta-file / --text-file joins, the meta modality in extract, multihot."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from extract.datasets import DatasetConfig, load_dataset
from extract.readers.side import entity_list
from extract.run import ExtractConfig, run_extract
from tests.cli_helpers import run_ok, run_refused

GENRES = ["Drama", "Comedy", "Horror"]


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _subset(root: Path, n: int = 24, meta: bool = True, meta_rows: dict[str, dict] | None = None) -> Path:
    """A folder shaped like the real poster subset: movies.csv, posters/, split file, metadata/."""
    rows, split = [], {"train": [], "dev": [], "test": []}
    (root / "posters").mkdir(parents=True)
    for i in range(n):
        mid = f"tt{1000000 + i}"
        g = GENRES[i % 3]
        rows.append({"Id": mid, "Genre": str([g]), "Overview": f"a {g.lower()} story number {i}"})
        Image.new("RGB", (8, 12), (i * 9 % 255, 0, 0)).save(root / "posters" / f"{mid}.jpg")
        split["train" if i < n * 2 // 3 else "dev" if i < n * 5 // 6 else "test"].append(mid[2:])
    _write_csv(root / "movies.csv", rows)
    (root / "mmimdb_split.json").write_text(json.dumps(split))
    if meta:
        out = []
        for i, r in enumerate(rows):
            g = GENRES[i % 3]
            default = {"Id": r["Id"], "title": f"[REC] {i}" if i == 0 else f"Movie {i}", "year": str(1980 + i),
                       "director": json.dumps([f"{g} Director"]), "director_src": "test",
                       "cast": json.dumps([f"{g} Actor", f"Extra {i}"]), "keywords": f"{g.lower()} mood|night",
                       "plot": f"a longer {g.lower()} plot {i}"}
            out.append({**default, **(meta_rows or {}).get(r["Id"], {})})
        _write_csv(root / "metadata" / "metadata.csv", out)
    return root


# ---- entity lists -------------------------------------------------------------------------
@pytest.mark.parametrize("value, expect", [
    ('["Ridley Scott", "Tony Scott"]', ["Ridley Scott", "Tony Scott"]),
    ("Ridley Scott|Tony  Scott", ["Ridley Scott", "Tony Scott"]),
    ("[REC] 3 Génesis", ["[REC] 3 Génesis"]),  # a title that starts with '[' is not a list
    (1983, ["1983"]), (None, []), ("", []), (float("nan"), []), ("[]", []),
    (["a", "a", " ", {"name": "b"}], ["a", "b"]),  # repeats and blanks dropped; IMDbPY-style dicts
])
def test_entity_list(value: object, expect: list[str]) -> None:
    assert entity_list(value) == expect


@pytest.mark.parametrize("bad", ['["a", "b"', "['a', 'b']", "[[1, 2], [3]]"])
def test_entity_list_refuses_malformed_lists(bad: str) -> None:
    with pytest.raises(ValueError, match="list"):
        entity_list(bad, "metadata.csv id 1 column cast")


# ---- joins -------------------------------------------------------------------------------
def test_preset_picks_up_metadata_and_keeps_the_data_fingerprint(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s")
    ds = load_dataset(DatasetConfig(path=root, preset="poster-subset"))
    r = ds.records[0]
    assert r.meta["director"] == ["Drama Director"] and r.meta["cast"] == ["Drama Actor", "Extra 0"]
    assert r.meta["keywords"] == ["drama mood", "night"] and r.meta["title"] == ["[REC] 0"]
    assert "director_src" not in r.meta and "Id" not in r.meta
    assert r.texts["meta_plot"] == "a longer drama plot 0" and r.texts["plot"] == "a drama story number 0"
    assert ds.report["meta"]["rows_matched"] == 24 and any("meta_plot" in n for n in ds.report["notes"])
    # the same data without the metadata file: same fingerprint (image/plot caches keep their names)
    bare = _subset(tmp_path / "bare" / "s", meta=False)
    ds_bare = load_dataset(DatasetConfig(path=bare, preset="poster-subset"))
    assert not ds_bare.records[0].meta and any("no metadata file" in n for n in ds_bare.report["notes"])
    assert ds.fingerprint() == ds_bare.fingerprint() and ds.side_texts == {"meta_plot"}


def test_fingerprint_ignores_side_files_but_side_fingerprint_sees_them(tmp_path: Path) -> None:
    a = _subset(tmp_path / "a")
    b = _subset(tmp_path / "b", meta_rows={"tt1000003": {"cast": json.dumps(["Someone Else"])}})
    da = load_dataset(DatasetConfig(path=a, preset="poster-subset"))
    db = load_dataset(DatasetConfig(path=b, preset="poster-subset"))
    assert da.side_fingerprint(meta_fields=["cast"]) != db.side_fingerprint(meta_fields=["cast"])
    assert da.side_fingerprint(meta_fields=["director"]) == db.side_fingerprint(meta_fields=["director"])
    assert da.side_fingerprint(text_field="meta_plot") == db.side_fingerprint(text_field="meta_plot")


def test_meta_file_errors_are_one_line(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="--meta-file"):
        load_dataset(DatasetConfig(path=root, preset="poster-subset", meta_file="absent.csv"))
    with pytest.raises(ValueError, match="--meta-cols.*not in"):
        load_dataset(DatasetConfig(path=root, preset="poster-subset", meta_file="metadata/metadata.csv",
                                   meta_fields=["director", "budget"]))
    with pytest.raises(ValueError, match="give --meta-file"):
        DatasetConfig(path=root, meta_fields=["director"])
    bad = _subset(tmp_path / "bad", meta_rows={"tt1000002": {"cast": '["Unclosed", "list"'}})
    with pytest.raises(ValueError, match="tt1000002 column cast.*JSON list"):
        load_dataset(DatasetConfig(path=bad, preset="poster-subset"))
    run_refused(["extract", "--preset", "poster-subset", "--data", bad, "--encoder", "multihot",
                 "--out", tmp_path / "c"], "tt1000002", "cast")


def test_missing_metadata_rows_and_meta_cols(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s")
    rows = list(csv.DictReader(open(root / "metadata" / "metadata.csv")))
    _write_csv(root / "metadata" / "metadata.csv", rows[2:])  # two movies without a metadata row
    ds = load_dataset(DatasetConfig(path=root, preset="poster-subset", meta_file="metadata/metadata.csv",
                                    meta_fields="director,cast"))
    assert ds.meta_fields == ["director", "cast"] and set(ds.records[5].meta) == {"director", "cast"}
    assert ds.records[0].meta == {"director": [], "cast": []} and ds.records[0].texts["meta_plot"] == ""
    assert ds.report["meta"]["rows_matched"] == 22 and ds.report["meta"]["fields"]["director"] == 22


def test_text_file_joins_ocr_output(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s", meta=False)
    ids = [f"tt{1000000 + i}" for i in range(24)]
    ocr = tmp_path / "ocr.csv"
    _write_csv(ocr, [{"id": m, "poster_text": "" if i % 4 == 0 else f"TITLE {i}", "ocr_status": "ok"}
                     for i, m in enumerate(ids[:20])])
    ds = load_dataset(DatasetConfig(path=root, preset="poster-subset", text_files=[ocr]))
    assert ds.records[1].texts["poster_text"] == "TITLE 1" and "ocr_status" not in ds.records[1].texts
    assert ds.records[22].texts["poster_text"] == ""  # no row in the file
    assert ds.report["text_files"][0]["empty"]["poster_text"] == 5 + 4
    res = run_extract(ExtractConfig(dataset=DatasetConfig(path=root, preset="poster-subset", text_files=[ocr]),
                                    encoder="tfidf", text_field="poster_text", options={"min_df": 1},
                                    out=tmp_path / "c", workers=0), progress=False)
    assert res.missing == {"empty_text": 9}  # empty poster texts are masked, never encoded
    out = run_ok(["extract", "--preset", "poster-subset", "--data", root, "--text-file", ocr, "--encoder",
                  "tfidf", "--text-field", "poster_text", "-o", "min_df=1", "--out", tmp_path / "c"])
    assert "up to date" in out and "text fields from" in out
    # an image cache does not change name when a text file is joined
    a = run_extract(ExtractConfig(dataset=DatasetConfig(path=root, preset="poster-subset"), encoder="toy-image",
                                  out=tmp_path / "i", workers=0), progress=False)
    b = run_extract(ExtractConfig(dataset=DatasetConfig(path=root, preset="poster-subset", text_files=[ocr]),
                                  encoder="toy-image", out=tmp_path / "i", workers=0), progress=False)
    assert a.path == b.path and b.skipped


# ---- the meta modality and multihot ------------------------------------------------------------
def _multihot(root: Path, out: Path, **opts: object) -> Path:
    cfg = ExtractConfig(dataset=DatasetConfig(path=root, preset="poster-subset"), encoder="multihot",
                        options={"min_count": 1, **opts}, out=out, workers=0)
    return run_extract(cfg, progress=False).path


def test_multihot_vocabulary_from_train_only_and_test_labels_change_nothing(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s", meta_rows={"tt1000023": {"cast": json.dumps(["Only In Test"]),
                                                              "director": "", "keywords": ""}})
    path = _multihot(root, tmp_path / "c", fields=["director", "cast", "keywords"])
    with h5py.File(path) as f:
        feats, present, ids = f["features"][...].astype(np.float32), f["present"][...], f["ids"].asstr()[...]
        assert f.attrs["modality"] == "meta"
    # 3 directors + 3 genre actors + 16 train extras + 4 keywords, all from train rows
    assert feats.shape[1] == 3 + (3 + 16) + 4
    last = list(ids).index("tt1000023")
    assert not present[last] and np.isnan(feats[last]).all()  # only an unseen actor: masked, not zeros
    for block in (slice(0, 3), slice(3, 22), slice(22, 26)):  # l2 per field
        norms = np.linalg.norm(np.nan_to_num(feats[present][:, block]), axis=1)
        assert np.allclose(norms[norms > 0], 1.0, atol=1e-3)
    # relabel a test movie: its genres reach no feature
    movies = list(csv.DictReader(open(root / "movies.csv")))
    movies[-2]["Genre"] = str(["Comedy", "Horror"])
    _write_csv(root / "movies.csv", movies)
    again = _multihot(root, tmp_path / "c2", fields=["director", "cast", "keywords"])
    with h5py.File(again) as f:
        np.testing.assert_array_equal(f["features"][...], feats.astype(np.float16))


def test_multihot_binary_min_count_and_errors(tmp_path: Path) -> None:
    root = _subset(tmp_path / "s")
    path = _multihot(root, tmp_path / "c", fields=["cast"], weighting="binary", min_count=2)
    with h5py.File(path) as f:
        feats = f["features"][...].astype(np.float32)
    assert feats.shape[1] == 3  # the "Extra i" actors are in one movie each: below min_count
    assert np.allclose(feats[~np.isnan(feats).any(1)].max(1), 1.0, atol=1e-3)
    run_refused(["extract", "--preset", "poster-subset", "--data", root, "--encoder", "multihot", "-o",
                 "fields=[\"budget\"]", "--out", tmp_path / "c"], "budget", "in no record")
    run_refused(["extract", "--preset", "poster-subset", "--data", root, "--encoder", "multihot", "-o",
                 "weighting=bm25", "--out", tmp_path / "c"], "weighting")
    bare = _subset(tmp_path / "b", meta=False)
    run_refused(["extract", "--preset", "poster-subset", "--data", bare, "--encoder", "multihot",
                 "--out", tmp_path / "c"], "has none", "--meta-file")


def test_demo_metadata_through_the_cli_and_a_three_modality_head(tiny_data: Path, tiny_caches: dict,
                                                                  tmp_path: Path) -> None:
    out = run_ok(["extract", "--data", tiny_data, "--format", "mmimdb", "--encoder", "multihot",
                  "--out", tmp_path / "c", "-o", "min_count=1"])
    assert "are in no record" in out  # writer, producer, ... are not in the demo's metadata: said
    meta = next((tmp_path / "c").glob("*-meta-multihot-*.h5"))
    run = run_ok(["train-head", "-f", f"image={tiny_caches['image']}", "-f", f"text={tiny_caches['text']}",
                  "-f", f"meta={meta}", "--fusion", "gmu", "--max-epochs", "3", "--quiet",
                  "--out", tmp_path / "runs"])
    assert "test macro-F1" in run
    # predict has no metadata input: the meta modality is masked on every item, and it says so
    folder = next((tmp_path / "runs").iterdir())
    pred = run_ok(["predict", folder, "--text", "a sheriff rides into a dusty saloon town"])
    assert "meta is masked on every item" in pred and "input:" in pred


def test_kg_cache_unchanged_when_a_test_movie_changes_genres(tmp_path: Path) -> None:
    """Issue 12: changing a test movie's genres changes nothing in a kg (or multihot) cache's
    features, pseudo labels or genre embeddings (only the labels the cache carries)."""
    def kg_arrays(root: Path, out: Path) -> dict[str, np.ndarray]:
        cfg = ExtractConfig(dataset=DatasetConfig(path=root, preset="poster-subset"), encoder="kg",
                            options={"dim": 8, "epochs": 2, "batch_size": 16}, out=out, workers=0)
        with h5py.File(run_extract(cfg, progress=False).path) as f:
            return {k: f[k][...] for k in ("features", "aux.at_label", "label_extras.genre_embeddings", "labels")}

    root = _subset(tmp_path / "s")
    before = kg_arrays(root, tmp_path / "c1")
    movies = list(csv.DictReader(open(root / "movies.csv")))
    movies[-1]["Genre"] = str(["Comedy", "Horror"])  # the last movie is in the test split
    _write_csv(root / "movies.csv", movies)
    after = kg_arrays(root, tmp_path / "c2")
    for k in ("features", "aux.at_label", "label_extras.genre_embeddings"):
        np.testing.assert_array_equal(before[k], after[k])
    assert not np.array_equal(before["labels"], after["labels"])
