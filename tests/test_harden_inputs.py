"""Issue 9, a user's own data: bad tables and files are refused with one line, encodings and
splits handled, and `extract` prints every decision it made. Poster and text content:
test_harden_media.py."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from extract.datasets import DatasetConfig, load_dataset
from extract.records import MMIMDB_GENRES
from tests.cli_helpers import run_ok, run_refused
from tests.input_helpers import text_table, tfidf_args, upright_image, write_csv


# ---------------------------------------------------------------------------- encodings (item 12)
def test_non_utf8_table_names_file_and_line(tmp_path: Path) -> None:
    rows = [{"id": "a", "plot": "fine", "genres": "Drama", "split": "train"},
            {"id": "b", "plot": "caf\u00e9", "genres": "War", "split": "test"}]
    table = write_csv(tmp_path / "latin1.csv", rows, encoding="latin-1")  # é is byte 0xe9, line 3
    with pytest.raises(ValueError, match=r"latin1.csv:3: not UTF-8"):
        load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split"))
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres"), "latin1.csv:3", "UTF-8")
    jl = tmp_path / "t.jsonl"
    jl.write_bytes(json.dumps({"id": "a", "text": "x", "label": ["Drama"]}).encode() + b"\n"
                   + b'{"id": "b", "text": "caf\xe9", "label": ["War"]}\n')
    run_refused(tfidf_args(jl, tmp_path / "c", "--format", "table", "--text-col", "text", "--label-col", "label"),
             "t.jsonl:2", "UTF-8")
    mmbt = tmp_path / "mmbt"
    mmbt.mkdir()
    (mmbt / "train.jsonl").write_bytes(jl.read_bytes())
    with pytest.raises(ValueError, match=r"train.jsonl:2: not UTF-8"):
        load_dataset(DatasetConfig(path=mmbt, format="jsonl"))


def test_non_utf8_mmimdb_json_and_split_file_name_the_file(tmp_path: Path) -> None:
    data = tmp_path / "mm" / "dataset"
    data.mkdir(parents=True)
    (data / "0000001.json").write_text(json.dumps({"plot": ["a"], "genres": ["Drama"]}))
    (data / "0000002.json").write_bytes(b'{"plot": ["caf\xe9"], "genres": ["War"]}')
    (tmp_path / "mm" / "split.json").write_text(json.dumps({"train": ["0000001"], "test": ["0000002"]}))
    with pytest.raises(ValueError, match=r"0000002.json:1: not UTF-8"):
        load_dataset(DatasetConfig(path=tmp_path / "mm"))
    table = text_table(tmp_path)
    (tmp_path / "split.json").write_bytes(b'{"train": ["m1"], "test": ["m\xe9"]}')
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres", "--split-file",
                    tmp_path / "split.json"), "split.json:1", "UTF-8")


def test_jsonl_with_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "one", "img": "a.jpeg", "label": ["Drama"]},
            {"id": "b", "text": "two", "img": "b.jpeg", "label": ["War"]}]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    table = tmp_path / "tab.jsonl"
    table.write_text("\ufeff" + body, encoding="utf-8")
    ds = load_dataset(DatasetConfig(path=table, format="table", text_cols=["text"], label_col="label",
                                    split_seed=0))
    assert [r.id for r in ds.records] == ["a", "b"]  # the BOM is not part of the first column name
    mmbt = tmp_path / "mmbt"
    mmbt.mkdir()
    (mmbt / "train.jsonl").write_text("\ufeff" + body, encoding="utf-8")
    assert [r.id for r in load_dataset(DatasetConfig(path=mmbt)).records] == ["a", "b"]
    one = tmp_path / "hf.jsonl"  # one file: the format is told from its first row, BOM or not
    one.write_text("\ufeff" + body, encoding="utf-8")
    assert load_dataset(DatasetConfig(path=one, split_seed=0)).options["format"] == "jsonl"


# ---------------------------------------------------------------------------- splits (item 13)
def test_split_ratios_flag_and_split_sizes_printed(tmp_path: Path) -> None:
    table = text_table(tmp_path, n=40)
    flags = ["--text-col", "plot", "--label-col", "genres", "--split-seed", "0"]
    out = run_ok(tfidf_args(table, tmp_path / "c", *flags, "--split-ratios", "0.5,0.25,0.25"))
    want = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_seed=0,
                                      split_ratios=(0.5, 0.25, 0.25))).split_counts()
    assert want["train"] == 20  # not the default 0.6 x 40
    assert "splits: " + " ".join(f"{k}={v}" for k, v in want.items()) in out
    assert "splits: train=" in run_ok(tfidf_args(table, tmp_path / "c", *flags))  # the default, printed too
    assert "splits: train=" in run_ok(tfidf_args(table, tmp_path / "c", *flags))  # and when up to date
    run_refused(tfidf_args(table, tmp_path / "c", *flags, "--split-ratios", "0.7,0.1"), "--split-ratios")
    run_refused(tfidf_args(table, tmp_path / "c", *flags, "--split-ratios", "a,b,c"), "--split-ratios")
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres",
                    "--split-ratios", "0.7,0.1,0.2"), "--split-ratios", "--split-seed")


# ---------------------------------------------------------------------------- decisions (item 14)
def test_table_labels_default_to_the_datas_own(tmp_path: Path, tiny_data: Path) -> None:
    rows = [{"plot": f"tale {i}", "tags": "Space Opera|Kids" if i % 2 else "Space Opera",
             "split": "train" if i < 6 else "test"} for i in range(8)]
    table = write_csv(tmp_path / "own.csv", rows)
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="tags", split_col="split"))
    assert ds.label_names == ["Kids", "Space Opera"] and ds.options["labels"] == "data"
    out = run_ok(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "tags", "--split-col", "split"))
    assert "labels: data (--labels auto: the table's own label names), 2 names: Kids, Space Opera" in out
    assert "ids are row numbers" in out  # no --id-col and no id column
    # MM-IMDb layouts and the poster-subset preset keep GMU's 23 genres
    assert load_dataset(DatasetConfig(path=tiny_data)).label_names == MMIMDB_GENRES
    assert DatasetConfig(path=tmp_path, preset="poster-subset").labels == "mmimdb23"
    # auto and the explicit set it stands for make the same cache
    explicit = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="tags", split_col="split",
                                          labels="data"))
    assert explicit.fingerprint() == ds.fingerprint()


def test_extract_prints_every_decision(tmp_path: Path) -> None:
    table = text_table(tmp_path, n=12)
    rows = list(csv.DictReader(table.open()))
    rows[0]["genres"] = "(no genres listed)"
    rows[1]["genres"] = "Drama|Talk-Show"
    table = write_csv(tmp_path / "t.csv", rows)
    split = {"train": [f"m{i}" for i in range(2, 9)] + ["gone1", "gone2"], "dev": ["m9"], "test": ["m10", "m11"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = run_ok(tfidf_args(table, tmp_path / "c", "--id-col", "id", "--text-col", "plot", "--label-col", "genres",
                     "--labels", "mmimdb23", "--split-file", tmp_path / "split.json",
                     "--drop-label", "(no genres listed)", "--drop-label", "Nope"))
    assert "labels: mmimdb23, 23 names" in out
    assert "labels dropped (not in --labels mmimdb23), records per name: Talk-Show=1" in out
    assert "labels removed by --drop-label, records per name: (no genres listed)=1, Nope=0 (not in the data)" in out
    assert "split-file ids matching no record: 2 (train=2, dev=0, test=0)" in out
    assert "records without a split (kept as 'none', never trained or evaluated on): 2" in out
    assert "splits: train=7 dev=1 test=2 none=2" in out
    assert "genres with no training positive" in out


def test_drop_label_removes_it_everywhere(tmp_path: Path) -> None:
    table = text_table(tmp_path)
    kw = dict(path=table, text_cols=["plot"], label_col="genres", split_col="split")
    ds = load_dataset(DatasetConfig(drop_labels=["Romance"], **kw))
    assert ds.label_names == ["Drama", "War"] and ds.report["removed_labels"] == {"Romance": 6}
    assert all("Romance" not in r.labels for r in ds.records)
    gmu = load_dataset(DatasetConfig(drop_labels=["Romance"], labels="mmimdb23", **kw))
    assert "Romance" not in gmu.label_names and len(gmu.label_names) == 22
    assert gmu.fingerprint() != load_dataset(DatasetConfig(labels="mmimdb23", **kw)).fingerprint()
    with pytest.raises(ValueError, match="--drop-label removed Drama=6, War=6, Romance=6; drop fewer"):
        load_dataset(DatasetConfig(drop_labels=["Drama", "War", "Romance"], **kw))


def test_unlabelled_table_and_no_train_rows_are_refused(tmp_path: Path) -> None:
    table = text_table(tmp_path)
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--split-col", "split"),
             "no record of the 12 has a label", "--label-col", "--label-cols")
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres"),
             "train split", "--split-seed")
    all_test = write_csv(tmp_path / "test_only.csv", [{**r, "split": "test"} for r in csv.DictReader(table.open())])
    run_refused(tfidf_args(all_test, tmp_path / "c", "--text-col", "plot", "--label-col", "genres", "--split-col", "split"),
             "train split", "--split-col 'split' has no train row")
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres", "--split-col", "split",
                    "--labels", "mmimdb23", "--drop-label", "Drama", "--drop-label", "War", "--drop-label",
                    "Romance"), "no record keeps a label")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # nothing half-written


def test_label_cols_auto_leaves_out_non_labels(tmp_path: Path) -> None:
    n = 12
    table = text_table(tmp_path, n=n, movieId=list(range(n)), rating=[i % 2 for i in range(n)],
                        num_votes=[(i + 1) % 2 for i in range(n)], Comedy=[int(i % 3 == 0) for i in range(n)],
                        Horror=[int(i % 4 == 0) for i in range(n)], year=[1990] * n)
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_cols=["auto"], split_col="split",
                                    id_col="id"))
    assert ds.report["label_cols"] == ["Comedy", "Horror"] and ds.label_names == ["Comedy", "Horror"]
    out = run_ok(tfidf_args(table, tmp_path / "c", "--id-col", "id", "--text-col", "plot", "--label-cols", "auto",
                     "--split-col", "split"))
    assert ("--label-cols auto took 2 columns: Comedy, Horror; left out by name: movieId, rating, num_votes, "
            "year; left out not 0/1: genres") in out


def test_label_cols_comma_list_as_readme_shows(tmp_path: Path) -> None:
    n = 12
    table = text_table(tmp_path, n=n, Comedy=[int(i % 3 == 0) for i in range(n)],
                        Horror=[int(i % 4 == 0) for i in range(n)], War=[i % 2 for i in range(n)])
    out = run_ok(tfidf_args(table, tmp_path / "c", "--id-col", "id", "--text-col", "plot", "--label-cols", "Comedy,Horror",
                     "--label-cols", "War", "--split-col", "split"))
    assert "3 names: Comedy, Horror, War" in out


@pytest.mark.parametrize("cell, sep", [("Drama;War", ";"), ("Drama, War", ","), ("Drama/War", "/")])
def test_label_column_with_another_separator_is_refused(tmp_path: Path, cell: str, sep: str) -> None:
    table = text_table(tmp_path)
    rows = [{**r, "genres": cell if i % 2 else "Drama"} for i, r in enumerate(csv.DictReader(table.open()))]
    table = write_csv(tmp_path / "t.csv", rows)
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "plot", "--label-col", "genres", "--split-col", "split"),
             f"--label-sep '{sep}'", "'genres'")
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split",
                                    label_sep=sep))
    assert ds.label_names == ["Drama", "War"]


def test_list_cells_and_the_right_separator_are_not_refused(tmp_path: Path) -> None:
    table = text_table(tmp_path)  # "Drama|Romance" holds the default --label-sep
    rows = [{**r, "genres": '["Drama", "Sci-Fi/Fantasy"]' if i == 0 else r["genres"]}
            for i, r in enumerate(csv.DictReader(table.open()))]
    ds = load_dataset(DatasetConfig(path=write_csv(tmp_path / "t.csv", rows), text_cols=["plot"],
                                    label_col="genres", split_col="split"))
    assert "Sci-Fi/Fantasy" in ds.label_names


# ---------------------------------------------------------------------------- poster-subset folder (item 18)
def _fake_poster_subset(root: Path) -> Path:
    root.mkdir()
    (root / "posters").mkdir()
    genres = ["Comedy", "Drama", "N/A"]
    rows = []
    for i in range(8):
        names = ["Comedy", "Drama"] if i % 2 else ["Drama"]
        rows.append({"Id": f"tt000000{i}", "Genre": str(names), **{g: int(g in names) for g in genres},
                     "Overview": f"overview {i}"})
        upright_image().save(root / "posters" / f"tt000000{i}.jpg")
    write_csv(root / "movies.csv", rows)
    split = {"train": [f"000000{i}" for i in range(5)], "dev": ["0000005"], "test": ["0000006"]}
    (root / "mmimdb_split.json").write_text(json.dumps(split))
    return root


def test_poster_subset_preset_reads_movies_csv_only(tmp_path: Path) -> None:
    root = _fake_poster_subset(tmp_path / "mmimdb-poster-subset")
    before = load_dataset(DatasetConfig(path=root, preset="poster-subset"))
    assert before.report["table"] == "movies.csv" and len(before.records) == 8
    (root / "metadata").mkdir()
    write_csv(root / "metadata" / "metadata.csv", [{"Id": "tt0000001", "title": "x"}])
    write_csv(root / "notes.csv", [{"a": "b"}])  # an unrelated table beside movies.csv
    (root / "extra.jsonl").write_text('{"x": 1}\n')
    (root / "README.md").write_text("# about\n")
    after = load_dataset(DatasetConfig(path=root, preset="poster-subset"))
    assert after.fingerprint() == before.fingerprint()
    # the other tables are ignored; metadata/metadata.csv is joined (issue 12) as metadata only
    key = lambda ds: [(r.id, r.texts, r.labels, r.image, r.split) for r in ds.records]  # noqa: E731
    assert key(after) == key(before)
    assert [r.meta for r in after.records][:2] == [{"title": []}, {"title": ["x"]}]
    (root / "movies.csv").unlink()
    with pytest.raises(FileNotFoundError, match="movies.csv"):
        load_dataset(DatasetConfig(path=root, preset="poster-subset"))


@pytest.mark.real_data
def test_poster_subset_real_folder_picks_movies_csv() -> None:
    from tests.conftest import subset_dir

    root = subset_dir()
    if root is None:
        pytest.skip("MM-IMDb poster subset not found (set MMGENRE_SUBSET)")
    ds = load_dataset(DatasetConfig(path=root, preset="poster-subset", limit=50))
    assert ds.report["table"] == "movies.csv" and ds.label_names == MMIMDB_GENRES


# ---------------------------------------------------------------------------- plain bad input
def test_missing_empty_and_wrong_tables_are_one_line(tmp_path: Path) -> None:
    run_refused(tfidf_args(tmp_path / "absent.csv", tmp_path / "c"), "absent.csv", "--data")
    (tmp_path / "empty.csv").write_text("")
    run_refused(tfidf_args(tmp_path / "empty.csv", tmp_path / "c", "--text-col", "plot"), "empty.csv", "no rows")
    (tmp_path / "header.csv").write_text("id,plot,genres\n")
    run_refused(tfidf_args(tmp_path / "header.csv", tmp_path / "c", "--text-col", "plot"), "no rows")
    table = text_table(tmp_path)
    run_refused(tfidf_args(table, tmp_path / "c", "--text-col", "overview", "--label-col", "genres"),
             "'overview'", "--text-col", "available columns")


# ---------------------------------------------------------------------------- adversarial pass: tables
def _table_args(table: Path, out: Path, *flags) -> list:
    return tfidf_args(table, out, "--text-col", "plot", "--label-col", "genres", "--split-col", "split", *flags)


def _rows(n: int = 12, genres=None) -> list[dict]:
    splits = ["train"] * (n - 4) + ["dev", "dev", "test", "test"]
    return [{"id": f"m{i}", "plot": f"a story number {i} about {'love' if i % 2 else 'war'}",
             "genres": genres(i) if genres else ("Drama|Romance" if i % 2 else "War"), "split": splits[i]}
            for i in range(n)]


def test_csv_cell_larger_than_the_csv_module_default_is_read(tmp_path: Path) -> None:
    old = csv.field_size_limit(131072)  # a fresh process's limit: the reader must raise it itself
    try:
        rows = _rows()
        rows[0]["plot"] = "word " * 400_000  # 2 MB in one cell
        table = write_csv(tmp_path / "big.csv", rows)
        run_ok(_table_args(table, tmp_path / "c"))
        ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split"))
        assert len(ds.records[0].texts["plot"]) == 2_000_000
    finally:
        csv.field_size_limit(max(old, csv.field_size_limit()))


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "dup.csv"
    table.write_text("id,plot,plot,genres,split\n" + "".join(
        f"m{i},first {i},second {i},{'Drama' if i % 2 else 'War'},{'train' if i < 6 else 'test'}\n"
        for i in range(8)))
    run_refused(_table_args(table, tmp_path / "c"), "dup.csv", "['plot']", "more than once")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("extra, got", [(",surplus", 6), (None, 4)])
def test_ragged_csv_row_names_file_line_and_counts(tmp_path: Path, extra: str | None, got: int) -> None:
    lines = ["id,plot,genres,split,year"] + [f"m{i},story {i},{'Drama' if i % 2 else 'War'},"
                                                 f"{'train' if i < 6 else 'test'},1990" for i in range(8)]
    lines[3] = lines[3] + extra if extra else lines[3].rsplit(",", 1)[0]  # data row 3 = line 4
    table = tmp_path / "ragged.csv"
    table.write_text("\n".join(lines) + "\n")
    run_refused(_table_args(table, tmp_path / "c"), "ragged.csv:4", f"{got} fields, expected 5")


@pytest.mark.parametrize("other", ["Drama, Comedy", "Drama;Comedy", "Drama|War, Comedy"])
def test_label_column_mixing_separators_is_refused(tmp_path: Path, other: str) -> None:
    table = write_csv(tmp_path / "t.csv", _rows(genres=lambda i: other if i in (2, 5) else "Drama|War"))
    sep = ";" if ";" in other else ","
    line = run_refused(_table_args(table, tmp_path / "c"), "'genres'", "of 12 cells hold --label-sep '|'",
                    f"2 have {sep!r} inside a name", repr(other))
    assert "JSON list" in line
    # a comma inside a name is fine when the cell is a list: it is parsed, never split
    lists = write_csv(tmp_path / "l.csv", _rows(genres=lambda i: '["Drama, Comedy", "War"]' if i in (2, 5)
                                                 else "Drama|War"))
    ds = load_dataset(DatasetConfig(path=lists, text_cols=["plot"], label_col="genres", split_col="split"))
    assert ds.label_names == ["Drama", "Drama, Comedy", "War"]


def test_unicode_forms_of_one_label_are_one_label(tmp_path: Path) -> None:
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "Comédie"), unicodedata.normalize("NFD", "Comédie")
    assert nfc != nfd
    table = write_csv(tmp_path / "t.csv", _rows(genres=lambda i: (nfd if i % 3 == 0 else nfc) + " |War"))
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split"))
    assert ds.label_names == [nfc, "War"] and ds.report["normalised_labels"] == {nfc: 4}
    out = run_ok(_table_args(table, tmp_path / "c"))
    assert "note: label names written with decomposed accents put in Unicode NFC" in out and f"{nfc}=4" in out


def test_label_renames_are_printed(tmp_path: Path) -> None:
    names = {0: "drama", 1: "Science Fiction|drama", 2: "Drama", 3: "Science Fiction", 4: "drama|War"}
    table = write_csv(tmp_path / "t.csv", _rows(genres=lambda i: names.get(i, "War")))
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split"))
    assert ds.label_names == ["Drama", "Sci-Fi", "War"]
    assert ds.report["renamed_labels"] == {"Science Fiction": {"to": "Sci-Fi", "records": 2},
                                           "drama": {"to": "Drama", "records": 3}}
    out = run_ok(_table_args(table, tmp_path / "c", "--labels", "data"))
    assert "labels renamed to a canonical name, records per name: Science Fiction->Sci-Fi=2, drama->Drama=3" in out
    plain = write_csv(tmp_path / "p.csv", _rows())  # nothing renamed: no line
    assert "renamed" not in run_ok(_table_args(plain, tmp_path / "c2"))


# ---------------------------------------------------------------------------- adversarial pass: image paths
def test_missing_image_dir_is_refused(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", _rows())
    absent = tmp_path / "nonexist"
    run_refused(_table_args(table, tmp_path / "c", "--image-dir", absent), "--image-dir", str(absent), "not found")
    (tmp_path / "afile").write_text("x")
    run_refused(_table_args(table, tmp_path / "c", "--image-dir", tmp_path / "afile"), "is not a folder")
    assert not (tmp_path / "c").exists()


def test_image_paths_none_of_which_exists_are_refused(tmp_path: Path) -> None:
    (tmp_path / "posters").mkdir()
    table = write_csv(tmp_path / "t.csv", _rows())
    run_refused(_table_args(table, tmp_path / "c", "--image-dir", tmp_path / "posters"),
             "none of the 12 image files", "--image-pattern '{id}.jpg'", str(tmp_path / "posters" / "m0.jpg"))
    rows = [{**r, "image": f"img/{r['id']}.png"} for r in _rows()]
    col = write_csv(tmp_path / "c.csv", rows)
    run_refused(_table_args(col, tmp_path / "c", "--image-col", "image"), "none of the 12", "--image-col 'image'")
    upright_image().save(tmp_path / "posters" / "m3.jpg")  # one exists: the other 11 are data, masked and counted
    ds = load_dataset(DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split",
                                    image_dir=tmp_path / "posters"))
    assert ds.report["missing_images"] == 11
    assert not (tmp_path / "c").exists()
