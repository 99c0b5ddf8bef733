"""The `ocr` step: a generated poster's printed title is read back, blank and missing posters
are counted, a rerun is a no-op, an interrupted run resumes to the same bytes, errors are one line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib
import pytest
from PIL import Image, ImageDraw, ImageFont

from extract.datasets import DatasetConfig, load_dataset
from extract.ocr import run as ocr_run
from extract.ocr.engines import Line, create_engine, reading_order
from tests.cli_helpers import run_ok, run_refused

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
TITLES = {"tt0000001": "NIGHT TRAIN", "tt0000002": "", "tt0000003": "RED HARBOR", "tt0000004": None}


def _poster(path: Path, title: str) -> None:
    im = Image.new("RGB", (300, 450), (255, 255, 255))
    if title:
        ImageDraw.Draw(im).text((30, 190), title, fill=(0, 0, 0), font=ImageFont.truetype(str(FONT), 36))
    im.save(path, quality=95)


@pytest.fixture(scope="module")
def posters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ocr")
    (root / "img").mkdir()
    rows = []
    for i, (mid, title) in enumerate(TITLES.items()):
        if title is not None:  # tt0000004's poster file is missing
            _poster(root / "img" / f"{mid}.jpg", title)
        rows.append({"id": mid, "genre": "Drama" if i % 2 else "Comedy", "split": ["train", "dev", "test", "test"][i]})
    with open(root / "t.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def _flags(root: Path) -> list:
    return ["--data", root / "t.csv", "--image-dir", root / "img", "--label-col", "genre", "--split-col", "split"]


def test_reads_the_printed_title_and_masks_the_rest(posters: Path, tmp_path: Path) -> None:
    out = run_ok(["ocr", *_flags(posters), "--out", tmp_path, "--quiet"])
    assert "posters by status: ok=2, no_text=1, image_missing=1" in out
    table = next(tmp_path.glob("*-ocr-rapidocr-*.csv"))
    rows = {r["id"]: r for r in csv.DictReader(open(table))}
    norm = lambda s: s.replace(" ", "").upper()  # noqa: E731
    assert "NIGHTTRAIN" in norm(rows["tt0000001"]["poster_text"])
    assert "REDHARBOR" in norm(rows["tt0000003"]["poster_text"])
    assert rows["tt0000002"] == {**rows["tt0000002"], "poster_text": "", "ocr_status": "no_text"}
    assert rows["tt0000004"]["ocr_status"] == "image_missing"
    meta = json.loads(table.with_suffix(".json").read_text())
    assert meta["engine"] == "rapidocr" and meta["options"]["det_limit_side_len"] == 480
    assert "up to date" in run_ok(["ocr", *_flags(posters), "--out", tmp_path, "--quiet"])
    # joined back as a text field: the empty and missing ones are masked by extract, not encoded
    ex = run_ok(["extract", *_flags(posters), "--text-file", table, "--text-field", "poster_text",
                 "--encoder", "tfidf", "-o", "min_df=1", "--out", tmp_path / "c"])
    assert "empty_text=2" in ex


def test_resume_after_an_interruption_writes_the_same_bytes(posters: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(DatasetConfig(path=posters / "t.csv", image_dir=posters / "img", label_col="genre",
                                    split_col="split"))
    engine = create_engine("rapidocr")
    whole = ocr_run.run_ocr(ds, engine, tmp_path / "a", progress=False)
    monkeypatch.setattr(ocr_run, "CHUNK", 1)
    real = ocr_run._write_chunk
    calls = {"n": 0}

    def dies_after_two(part_dir: Path, c: int, rows: list) -> None:
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after two finished chunks
        calls["n"] += 1
        real(part_dir, c, rows)

    monkeypatch.setattr(ocr_run, "_write_chunk", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        ocr_run.run_ocr(ds, engine, tmp_path / "b", progress=False)
    assert len(list((tmp_path / "b").glob(".*.partial/chunk-*.json"))) == 2
    monkeypatch.setattr(ocr_run, "_write_chunk", real)
    resumed = ocr_run.run_ocr(ds, engine, tmp_path / "b", progress=False)
    assert resumed.path.read_bytes() == whole.path.read_bytes()
    assert json.loads(resumed.path.with_suffix(".json").read_text())["resumed"] is True
    assert not list((tmp_path / "b").glob(".*.partial"))


def test_reading_order_top_to_bottom_then_left_to_right() -> None:
    lines = [Line("B", 1, 50, 10, 20), Line("C", 1, 0, 60, 20), Line("A", 1, 0, 12, 20)]
    assert [ln.text for ln in reading_order(lines)] == ["A", "B", "C"]


def test_ocr_errors_are_one_line(posters: Path, tmp_path: Path) -> None:
    run_refused(["ocr", *_flags(posters), "--engine", "gemini", "--out", tmp_path], "Unknown OCR engine", "rapidocr")
    run_refused(["ocr", *_flags(posters), "--field", "ocr_text", "--out", tmp_path], "--field")
    run_refused(["ocr", *_flags(posters), "--workers", "0", "--out", tmp_path], "--workers")


def test_demo_posters_print_titles_the_ocr_reads() -> None:
    from extract.demo.data import _movie

    engine = create_engine("rapidocr")
    titled = 0
    for i in range(6):
        record, poster, _ = _movie(i, 0)
        text = " ".join(ln.text for ln in reading_order(engine.read(poster))).replace(" ", "").upper()
        if record["title"].replace(" ", "").upper() in text:
            titled += 1
    assert 1 <= titled <= 5  # about half of the demo posters carry their title
