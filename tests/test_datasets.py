"""Data set readers: every layout, malformed input, splits, labels, presets, real data."""
from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import (PRESETS, READERS, DatasetConfig, detect_format, list_presets,
                              list_readers, load_dataset)
from extract.readers.labels import canonical_label, parse_label_cell
from extract.readers.splits import NORMALIZERS, stratified_split
from extract.records import MMIMDB_GENRES, SPLITS, UNSPLIT

JPEG_MAGIC = b"\xff\xd8\xff\xe0" + b"\x00" * 16  # readers never decode, so bytes are enough


# ---------------------------------------------------------------- fixtures: raw MM-IMDb
def _movie(plot, genres, **meta):
    return {"plot": plot, "genres": genres, **meta}


@pytest.fixture
def mmimdb_root(tmp_path: Path) -> Path:
    """Raw MM-IMDb: 5 movies, one without a poster, one with a corrupt poster, one empty plot."""
    root = tmp_path / "mmimdb"
    data = root / "dataset"
    data.mkdir(parents=True)
    movies = {
        "0000001": _movie(["short one", "the much longer plot summary"], ["Drama", "Sci-fi"],
                          title="A", year=1990, director=["X"]),
        "0000002": _movie(["only plot"], ["Comedy", "Reality-TV"], title="B"),
        "0000003": _movie([], ["Drama", "News"], title="C"),           # empty plot
        "0000004": _movie(["plot four"], ["Film Noir", "Crime"], title="D"),  # no poster file
        "0000005": _movie(["plot five"], ["Comedy"], title="E"),        # corrupt poster
    }
    for mid, doc in movies.items():
        (data / f"{mid}.json").write_text(json.dumps(doc))
        if mid != "0000004":
            (data / f"{mid}.jpeg").write_bytes(JPEG_MAGIC if mid != "0000005" else b"not a jpeg")
    split = {"train": ["0000001", "0000002", "9999999"], "dev": ["0000003"], "test": ["0000004", "8888888"]}
    (root / "split.json").write_text(json.dumps(split))
    return root


def test_mmimdb_raw_reads_everything(mmimdb_root: Path) -> None:
    ds = load_dataset(DatasetConfig(path=mmimdb_root))
    assert ds.options["format"] == "mmimdb"
    by_id = {r.id: r for r in ds.records}
    assert [r.id for r in ds.records] == sorted(by_id)
    r1 = by_id["0000001"]
    assert r1.texts == {"plot": "the much longer plot summary"}  # longest by default
    assert r1.labels == ["Drama", "Sci-Fi"]  # quirk "Sci-fi" -> GMU name, GMU order
    assert r1.meta == {"title": "A", "year": 1990, "director": ["X"]}
    assert r1.image == mmimdb_root / "dataset" / "0000001.jpeg"
    assert by_id["0000004"].labels == ["Crime", "Film-Noir"]
    assert ds.label_names == MMIMDB_GENRES
    assert ds.report["dropped_labels"] == {"News": 1, "Reality-TV": 1}
    # splits, unknown split ids, records outside the split
    assert [by_id[i].split for i in sorted(by_id)] == ["train", "train", "dev", "test", UNSPLIT]
    assert ds.report["unknown_split_ids"] == {"train": 1, "dev": 0, "test": 1}
    assert ds.report["records_without_split"] == 1
    # missing poster: path kept, counted; corrupt poster: carried through untouched
    assert not by_id["0000004"].image.exists()
    assert ds.report["missing_images"] == 1
    assert by_id["0000005"].image.read_bytes() == b"not a jpeg"
    assert by_id["0000003"].texts["plot"] == "" and ds.report["empty_texts"] == {"plot": 1}
    assert {"Crime", "Film-Noir"} <= set(ds.report["labels_without_train_positive"])  # only in test
    assert "Drama" not in ds.report["labels_without_train_positive"]


@pytest.mark.parametrize("plot, expected", [
    ("first", "short one"), ("all", "short one the much longer plot summary"),
    ("longest", "the much longer plot summary")])
def test_mmimdb_plot_choice(mmimdb_root: Path, plot: str, expected: str) -> None:
    ds = load_dataset(DatasetConfig(path=mmimdb_root, plot=plot))
    assert ds.records[0].texts["plot"] == expected
    assert ds.options["plot"] == plot


def test_mmimdb_root_is_dataset_dir(mmimdb_root: Path) -> None:
    data = mmimdb_root / "dataset"
    beside = load_dataset(DatasetConfig(path=data))  # split.json beside the dataset dir
    assert beside.split_counts()["train"] == 2
    (mmimdb_root / "split.json").rename(data / "split.json")  # split.json inside it
    inside = load_dataset(DatasetConfig(path=data))
    assert [r.split for r in inside.records] == [r.split for r in beside.records]
    assert inside.name == "mmimdb" and len(inside.records) == 5  # split.json is not a movie


def test_mmimdb_bad_json_names_file(mmimdb_root: Path) -> None:
    bad = mmimdb_root / "dataset" / "0000006.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="0000006.json"):
        load_dataset(DatasetConfig(path=mmimdb_root))


def test_mmimdb_labels_data_keeps_all(mmimdb_root: Path) -> None:
    ds = load_dataset(DatasetConfig(path=mmimdb_root, labels="data"))
    assert ds.label_names == sorted(["Drama", "Sci-Fi", "Comedy", "Reality-TV", "News", "Film-Noir", "Crime"])
    assert ds.report["dropped_labels"] == {}


def test_mmimdb_without_split_file_and_limit(mmimdb_root: Path) -> None:
    (mmimdb_root / "split.json").unlink()
    with pytest.raises(ValueError, match="no record among the first 2 .*train split.*--split-seed"):
        load_dataset(DatasetConfig(path=mmimdb_root, limit=2))  # nothing to train on: refused
    ds = load_dataset(DatasetConfig(path=mmimdb_root, limit=2, split_seed=0))
    assert [r.id for r in ds.records] == ["0000001", "0000002"]
    assert ds.report["records_without_split"] == 0 and ds.report["notes"]


# ---------------------------------------------------------------- fixtures: jsonl
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_mmbt_jsonl_dir(tmp_path: Path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "0000001.jpeg").write_bytes(JPEG_MAGIC)
    _write_jsonl(tmp_path / "train.jsonl", [
        {"id": "0000001", "text": "a plot", "image": "dataset/0000001.jpeg", "label": ["Drama", "Horror"]},
        {"id": "0000002", "text": "b plot", "image": "dataset/0000002.jpeg", "label": ["Comedy"]}])
    _write_jsonl(tmp_path / "dev.jsonl", [{"id": "0000003", "text": "c", "image": "dataset/0000003.jpeg",
                                            "label": ["Drama"]}])
    _write_jsonl(tmp_path / "test.jsonl", [{"id": "0000004", "text": "", "img": "dataset/0000004.jpeg",
                                             "label": ["Western", "Talk-Show"]}])
    assert detect_format(DatasetConfig(path=tmp_path)) == "jsonl"
    ds = load_dataset(DatasetConfig(path=tmp_path))
    assert [(r.id, r.split) for r in ds.records] == [
        ("0000001", "train"), ("0000002", "train"), ("0000003", "dev"), ("0000004", "test")]
    assert ds.records[0].image == tmp_path / "dataset" / "0000001.jpeg" and ds.records[0].image.exists()
    assert ds.records[0].labels == ["Drama", "Horror"]
    assert ds.report["missing_images"] == 3
    assert ds.report["empty_texts"] == {"plot": 1}
    assert ds.report["dropped_labels"] == {"Talk-Show": 1}
    assert "Western" in ds.report["labels_without_train_positive"]


def test_hf_jsonl_file_id_from_image(tmp_path: Path) -> None:
    sub = tmp_path / "hf"
    sub.mkdir()
    f = sub / "mmimdb.jsonl"
    _write_jsonl(f, [{"img": "img/0000010.jpeg", "text": "x", "label": ["Action"]},
                     {"img": "img/0000011.jpeg", "text": "y", "label": "Drama|Romance"}])
    assert detect_format(DatasetConfig(path=f)) == "jsonl"
    with pytest.raises(ValueError, match="train split"):  # a file not named after a split has none
        load_dataset(DatasetConfig(path=f))
    ds = load_dataset(DatasetConfig(path=f, split_seed=0))
    assert [r.id for r in ds.records] == ["0000010", "0000011"]
    assert ds.records[0].image == sub / "img" / "0000010.jpeg"
    assert ds.records[1].labels == ["Drama", "Romance"]


def test_jsonl_bad_line(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"id": "1", "text": "a", "label": []}\n{oops\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2"):
        load_dataset(DatasetConfig(path=tmp_path, format="jsonl"))


# ---------------------------------------------------------------- fixtures: tables
ROWS = [
    {"Id": "tt0000001", "Genre": "['Drama', 'Sci-Fi']", "Overview": "one", "split": "train"},
    {"Id": "tt0000002", "Genre": "['Comedy']", "Overview": "two", "split": "val"},
    {"Id": "tt0000003", "Genre": "['Comedy', 'N/A']", "Overview": "", "split": "test"},
    {"Id": "tt0000004", "Genre": "[]", "Overview": "four", "split": ""},
]
ONEHOT = ["Comedy", "Drama", "N/A", "News", "Sci-Fi"]


def _write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def _onehot_rows() -> list[dict]:
    out = []
    for r in ROWS:
        names = ast.literal_eval(r["Genre"])
        out.append({**r, **{g: int(g in names) for g in ONEHOT}})
    return out


@pytest.fixture
def table(tmp_path: Path) -> Path:
    (tmp_path / "posters").mkdir()
    for r in ROWS[:3]:  # the 4th poster is missing
        (tmp_path / "posters" / f"{r['Id']}.jpg").write_bytes(JPEG_MAGIC)
    return _write_csv(tmp_path / "movies.csv", _onehot_rows())


def test_table_csv_columns_and_split_col(table: Path) -> None:
    ds = load_dataset(DatasetConfig(path=table, id_col="Id", text_cols=["plot=Overview"], image_dir=Path("posters"),
                                    label_col="Genre", split_col="split", meta_cols=[], labels="mmimdb23"))
    assert ds.options["format"] == "table"
    assert [r.split for r in ds.records] == ["train", "dev", "test", UNSPLIT]
    r = ds.records[0]
    assert r.texts == {"plot": "one"} and r.labels == ["Drama", "Sci-Fi"] and r.meta == {}
    assert r.image == table.parent / "posters" / "tt0000001.jpg"
    assert ds.report["missing_images"] == 1 and ds.report["empty_texts"] == {"plot": 1}
    assert ds.report["dropped_labels"] == {"N/A": 1} and ds.report["records_without_labels"] == 1


def test_table_missing_column_lists_available(table: Path) -> None:
    with pytest.raises(ValueError, match=r"'Plot'.*--text-col.*available columns.*Overview"):
        load_dataset(DatasetConfig(path=table, id_col="Id", text_cols=["Plot"]))
    with pytest.raises(ValueError, match=r"--id-col"):
        load_dataset(DatasetConfig(path=table, id_col="imdb"))


def test_table_unknown_split_value(tmp_path: Path) -> None:
    f = _write_csv(tmp_path / "t.csv", [{"id": "a", "split": "train"}, {"id": "b", "split": "holdout"}])
    with pytest.raises(ValueError, match="holdout"):
        load_dataset(DatasetConfig(path=f, split_col="split"))


def test_onehot_and_list_labels_identical(table: Path) -> None:
    common = dict(path=table, id_col="Id", text_cols=["plot=Overview"], image_dir="posters", meta_cols=[],
                  split_col="split")
    listed = load_dataset(DatasetConfig(label_col="Genre", labels="mmimdb23", **common))
    onehot = load_dataset(DatasetConfig(label_cols=ONEHOT, labels="mmimdb23", **common))
    auto = load_dataset(DatasetConfig(label_cols=["auto"], labels="mmimdb23", **common))
    for other in (onehot, auto):
        assert other.records == listed.records
        assert other.label_names == listed.label_names
        assert other.report["dropped_labels"] == listed.report["dropped_labels"] == {"N/A": 1}
    assert auto.report["label_cols"] == ONEHOT
    data = [load_dataset(DatasetConfig(labels="data", **kw, **common)) for kw in
            ({"label_col": "Genre"}, {"label_cols": ONEHOT})]
    assert data[0].label_names == data[1].label_names == ["Comedy", "Drama", "N/A", "Sci-Fi"]  # News: no positive


def test_onehot_rejects_non_binary(tmp_path: Path) -> None:
    f = _write_csv(tmp_path / "t.csv", [{"id": "a", "Drama": "maybe"}])
    with pytest.raises(ValueError, match="'Drama'.*0/1"):
        load_dataset(DatasetConfig(path=f, label_cols=["Drama"]))


@pytest.mark.parametrize("cell, sep", [('["Drama", "War"]', "|"), ("['Drama', 'War']", "|"),
                                       ("Drama|War", "|"), ("Drama, War", ","), (" Drama ;War", ";")])
def test_label_cell_forms(cell: str, sep: str) -> None:
    assert parse_label_cell(cell, sep, "here") == ["Drama", "War"]


def test_label_cell_bad_literal() -> None:
    with pytest.raises(ValueError, match="here"):
        parse_label_cell("['Drama'", "|", "here")


def test_canonical_label_quirks() -> None:
    assert canonical_label("Sci-fi") == canonical_label("SciFi") == canonical_label("Science Fiction") == "Sci-Fi"
    assert canonical_label("film noir") == "Film-Noir" and canonical_label(" Talk-Show ") == "Talk-Show"


def test_text_only_and_image_only_tables(tmp_path: Path) -> None:
    f = _write_csv(tmp_path / "t.csv", [{"id": "a", "text": "hello", "img": "a.png", "tags": "x|y", "split": "train"},
                                         {"id": "b", "text": "", "img": "", "tags": "y", "split": "test"},
                                         {"id": "c", "text": "hi", "img": "c.png", "tags": "x", "split": "test"}])
    (tmp_path / "c.png").write_bytes(b"png")  # one image exists: a.png alone missing is data, not a wrong path
    text_only = load_dataset(DatasetConfig(path=f, text_cols=["text"], label_col="tags", labels="data",
                                           split_col="split"))
    assert [r.image for r in text_only.records] == [None, None, None]
    assert text_only.report["records_without_image"] == 3 and text_only.report["missing_images"] == 0
    assert text_only.records[0].texts == {"text": "hello"} and text_only.label_names == ["x", "y"]
    assert text_only.records[0].meta == {"img": "a.png"}  # unused columns land in meta
    image_only = load_dataset(DatasetConfig(path=f, image_col="img", label_col="tags", labels="data",
                                            split_col="split"))
    assert [r.texts for r in image_only.records] == [{}, {}, {}]
    assert image_only.records[0].image == tmp_path / "a.png" and image_only.records[1].image is None
    assert image_only.report["missing_images"] == 1


def test_table_tsv_jsonl_and_row_ids(tmp_path: Path) -> None:
    tsv = _write_csv(tmp_path / "t.tsv", [{"name": "a", "labels": "War"}], delimiter="\t")
    ds = load_dataset(DatasetConfig(path=tsv, label_col="labels", text_cols=["name"], split_seed=0))
    assert ds.records[0].id == "0" and ds.records[0].labels == ["War"] and ds.report["notes"]
    jl = tmp_path / "t.jsonl"
    _write_jsonl(jl, [{"key": "k1", "body": "text", "genres": ["Drama", "Sci-fi"]}])
    ds = load_dataset(DatasetConfig(path=jl, id_col="key", text_cols=["body"], label_col="genres", split_seed=0))
    assert ds.records[0].id == "k1" and ds.records[0].labels == ["Drama", "Sci-Fi"]


def test_table_duplicate_and_empty_ids(tmp_path: Path) -> None:
    dup = _write_csv(tmp_path / "d.csv", [{"id": "a"}, {"id": "a"}])
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        load_dataset(DatasetConfig(path=dup))
    empty = _write_csv(tmp_path / "e.csv", [{"id": "a"}, {"id": " "}])
    with pytest.raises(ValueError, match="row 2.*empty id"):
        load_dataset(DatasetConfig(path=empty))


def test_split_file_with_strip_tt(table: Path) -> None:
    split = {"train": ["0000001", "0000002"], "dev": ["0000003"], "test": ["0000099"]}
    (table.parent / "split.json").write_text(json.dumps(split))
    kw = dict(path=table, id_col="Id", label_col="Genre", split_file=Path("split.json"))
    ds = load_dataset(DatasetConfig(id_normalizer="strip-tt", **kw))
    assert [r.split for r in ds.records] == ["train", "train", "dev", UNSPLIT]
    assert ds.records[0].id == "tt0000001"  # ids stay as read; only matching is normalised
    assert ds.report["unknown_split_ids"] == {"train": 0, "dev": 0, "test": 1}
    with pytest.raises(ValueError, match="split.json has no train id.*--id-normalizer"):
        load_dataset(DatasetConfig(**kw))  # without the normaliser nothing matches: nothing to train on
    assert NORMALIZERS["strip-tt"]("tt0086425") == "0086425" and NORMALIZERS["digits"]("tt0086425") == "86425"


def test_split_file_conflict(table: Path) -> None:
    (table.parent / "split.json").write_text(json.dumps({"train": ["x"], "test": ["x"]}))
    with pytest.raises(ValueError, match="'x' is in both"):
        load_dataset(DatasetConfig(path=table, split_file=table.parent / "split.json"))


# ---------------------------------------------------------------- seeded stratified split
def _many(tmp_path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    genres = ["Drama", "Comedy", "Horror", "War"]
    rows = [{"id": f"m{i:03d}", "g": "|".join(g for g in genres if rng.random() < 0.4)} for i in range(n)]
    return _write_csv(tmp_path / "many.csv", rows)


def test_stratified_split_deterministic_and_covering(tmp_path: Path) -> None:
    f = _many(tmp_path)
    cfg = lambda seed: DatasetConfig(path=f, label_col="g", labels="data", split_seed=seed)  # noqa: E731
    a, b, c = load_dataset(cfg(1)), load_dataset(cfg(1)), load_dataset(cfg(2))
    splits = lambda d: [r.split for r in d.records]  # noqa: E731
    assert splits(a) == splits(b)
    assert splits(a) != splits(c)
    counts = a.split_counts()
    assert all(counts[s] > 0 for s in SPLITS) and counts[UNSPLIT] == 0
    assert abs(counts["train"] - 36) <= 2 and abs(counts["test"] - 18) <= 2
    assert a.report["labels_without_train_positive"] == []


def test_stratified_split_balances_labels() -> None:
    y = np.zeros((100, 3), dtype=bool)
    y[:10, 0] = True   # rare label: 10 positives -> 6/1/3
    y[:50, 1] = True
    out = np.array(stratified_split(y, (0.6, 0.1, 0.3), seed=3))
    assert [(out[y[:, 0]] == s).sum() for s in SPLITS] == [6, 1, 3]
    assert [(out == s).sum() for s in SPLITS] == [60, 10, 30]


# ---------------------------------------------------------------- config validation, registries, presets
@pytest.mark.parametrize("kw, flag", [
    ({"format": "parquet"}, "--format"), ({"preset": "nope"}, "--preset"), ({"plot": "median"}, "--plot"),
    ({"labels": "all"}, "--labels"), ({"id_normalizer": "upper"}, "--id-normalizer"),
    ({"label_col": "g", "label_cols": ["a"]}, "--label-cols"), ({"split_col": "s", "split_seed": 1}, "--split-seed"),
    ({"split_ratios": (0.5, 0.5, 0.5)}, "--split-ratios"), ({"limit": 0}, "--limit"),
    ({"image_pattern": "poster.jpg"}, "--image-pattern"), ({"label_cols": ["auto", "x"]}, "--label-cols")])
def test_config_errors_name_flag(tmp_path: Path, kw: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        DatasetConfig(path=tmp_path, **kw)


def test_missing_path_and_table_flags_elsewhere(mmimdb_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--data"):
        load_dataset(DatasetConfig(path=tmp_path / "absent"))
    with pytest.raises(ValueError, match="--id-col.*table only"):
        load_dataset(DatasetConfig(path=mmimdb_root, format="mmimdb", id_col="x"))


def test_registries_and_presets(tmp_path: Path) -> None:
    assert list_readers() == sorted(READERS) == ["jsonl", "mmimdb", "table"]
    assert "poster-subset" in list_presets() == sorted(PRESETS)
    cfg = DatasetConfig(path=tmp_path, preset="poster-subset")
    assert (cfg.format, cfg.id_col, cfg.label_col, cfg.id_normalizer) == ("table", "Id", "Genre", "strip-tt")
    assert cfg.split_file == Path("mmimdb_split.json") and cfg.image_dir == Path("posters")
    own = DatasetConfig(path=tmp_path, preset="poster-subset", label_cols=["auto"], split_seed=0, labels="data")
    assert (own.label_col, own.label_cols, own.split_file, own.labels) == (None, ["auto"], None, "data")


def test_options_track_record_changing_settings(mmimdb_root: Path) -> None:
    a = load_dataset(DatasetConfig(path=mmimdb_root))
    b = load_dataset(DatasetConfig(path=mmimdb_root, plot="first"))
    assert "path" not in a.options and a.options["plot"] == "longest"
    assert a.fingerprint() != b.fingerprint()
    json.dumps(a.options)  # goes into the cache attrs as JSON
