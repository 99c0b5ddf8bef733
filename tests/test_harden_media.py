"""Issue 9, poster and text content: decompression bombs, EXIF orientation, 16-bit and float
posters, invisible-only texts and texts without a vocabulary word are masked and counted (or
decoded right). Tables, encodings, splits and printed decisions: test_harden_inputs.py."""
from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cli import app
from extract.datasets import DatasetConfig, load_dataset
from tests.cli_helpers import run_ok, runner
from tests.input_helpers import text_table, upright_image, write_csv


# ---------------------------------------------------------------------------- posters (items 8, 9)
def _bomb_png(path: Path, side: int = 15000) -> Path:
    """A valid 1-bit side x side PNG of ~30 KB: 225 Mpixel, over Pillow's decompression-bomb limit."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * side, 9))
                     + chunk(b"IEND", b""))
    return path


def _poster_table(tmp_path: Path, posters: dict[str, str]) -> Path:
    rows = [{"id": pid, "image": name, "genres": "Drama|War" if i % 2 else "Comedy",
             "split": "train" if i < len(posters) - 1 else "test"} for i, (pid, name) in enumerate(posters.items())]
    return write_csv(tmp_path / "posters.csv", rows)


def _image_cfg(table: Path) -> DatasetConfig:
    return DatasetConfig(path=table, image_col="image", label_col="genres", split_col="split")


def test_status_codes_agree_with_the_poster_loader() -> None:
    from extract import images, run

    assert (run.OK, run.FILE_MISSING, run.CORRUPT) == (images.OK, images.FILE_MISSING, images.CORRUPT)
    assert run.REASONS[images.CORRUPT] == "image_corrupt"


def test_decompression_bomb_is_masked_and_counted(tmp_path: Path) -> None:
    from extract.run import ExtractConfig, run_extract

    upright_image().save(tmp_path / "a.png")
    upright_image().rotate(180).save(tmp_path / "b.png")
    _bomb_png(tmp_path / "bomb.png")
    table = _poster_table(tmp_path, {"a": "a.png", "bomb": "bomb.png", "b": "b.png"})
    res = run_extract(ExtractConfig(dataset=_image_cfg(table), encoder="toy-image", out=tmp_path / "c",
                                    workers=0), progress=False)
    assert res.missing == {"image_corrupt": 1} and res.n == 3
    out = run_ok(["extract", "--data", table, "--image-col", "image", "--label-col", "genres", "--split-col",
               "split", "--encoder", "toy-image", "--workers", "0", "--out", tmp_path / "cli"])
    assert "image_corrupt=1" in out


def test_exif_orientation_is_applied_and_recorded(tmp_path: Path) -> None:
    import h5py

    from cache.read import open_info
    from extract.run import ExtractConfig, run_extract

    up = upright_image()
    up.save(tmp_path / "up.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: stored turned 90 degrees, shown rotated back
    up.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "side.png", exif=exif)
    table = _poster_table(tmp_path, {"up": "up.png", "side": "side.png", "other": "up.png"})
    res = run_extract(ExtractConfig(dataset=_image_cfg(table), encoder="toy-image", out=tmp_path / "c",
                                    workers=0, dtype="float32"), progress=False)
    with h5py.File(res.path, "r") as f:
        feats = f["features"][...]
    np.testing.assert_array_equal(feats[0], feats[1])  # the sideways phone photo reads upright
    assert open_info(res.path).attrs["preprocess"]["loading"]["exif_transpose"] is True


@pytest.mark.parametrize("name", ["resnet18", "efficientnet-lite0", "minilm"])
def test_image_encoders_record_the_loading(name: str) -> None:
    from extract.images import LOADING
    from tests.tiny_encoders import make_encoder

    enc = make_encoder(name)
    pre = enc.describe()["preprocess"]
    if enc.modality == "image":
        assert pre["loading"] == LOADING and LOADING["exif_transpose"] is True
    else:
        assert "loading" not in pre  # a text encoder reads no image file


# ---------------------------------------------------------------------------- texts (item 10)
INVISIBLE = "\u200b\u200c\u200d\ufeff\u00ad\u2060"  # ZWSP, ZWNJ, ZWJ, BOM, soft hyphen, word joiner


def test_invisible_text_counts_as_empty(tmp_path: Path) -> None:
    from extract.encoders import create_encoder
    from extract.run import EMPTY_TEXT, OK, ExtractConfig, _Rows, run_extract

    plots = {3: INVISIBLE, 5: " \u00a0\u3000\t"}  # invisible only; plain whitespace only
    table = text_table(tmp_path, plot=[plots.get(i, f"plot {i} with words") for i in range(12)])
    cfg = DatasetConfig(path=table, text_cols=["plot"], label_col="genres", split_col="split")
    ds = load_dataset(cfg)
    assert ds.report["empty_texts"] == {"plot": 2}
    rows = _Rows(ds.records, "text", "plot", create_encoder("tfidf"))
    assert [rows[i][1] for i in (2, 3, 5)] == [OK, EMPTY_TEXT, EMPTY_TEXT]
    res = run_extract(ExtractConfig(dataset=cfg, encoder="tfidf", options={"min_df": 1}, out=tmp_path / "c",
                                    workers=0), progress=False)
    assert res.missing == {"empty_text": 2}


# ---------------------------------------------------------------------------- adversarial pass: deep posters
def _gradient() -> np.ndarray:
    """(H, W) uint8 with every level 0..255 and some structure down the rows."""
    return ((np.arange(256)[None, :] + np.arange(32)[:, None] * 8) % 256).astype(np.uint8)


def test_16_bit_and_float_posters_decode_like_the_8_bit_one(tmp_path: Path) -> None:
    from extract.images import OK, load_image

    g8 = _gradient()
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 0..65535
    Image.fromarray((g8 / 255.0).astype(np.float32)).save(tmp_path / "f01.tif")  # 0..1 floats
    Image.fromarray(g8.astype(np.float32)).save(tmp_path / "f255.tif")  # 0..255 floats
    Image.fromarray(g8.astype(np.int32)).save(tmp_path / "i32.tif")  # 32-bit ints, 0..255
    assert Image.open(tmp_path / "g16.png").mode.startswith("I") and Image.open(tmp_path / "f01.tif").mode == "F"
    status, ref, _ = load_image(tmp_path / "g8.png")
    want = np.asarray(ref).astype(int)
    for name in ("g16.png", "f01.tif", "f255.tif", "i32.tif"):
        status, im, reason = load_image(tmp_path / name)
        assert status == OK and im.mode == "RGB", reason
        assert np.abs(np.asarray(im).astype(int) - want).max() <= 1, name


def test_wide_int_poster_uses_its_own_range(tmp_path: Path) -> None:
    from extract.images import load_image

    wide = _gradient().astype(np.int32) * 1000 - 5000  # -5000..250000: neither 8- nor 16-bit
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    _, im, _ = load_image(tmp_path / "wide.tif")
    a = np.asarray(im)[..., 0]
    np.testing.assert_array_equal(a[0], np.arange(256))  # -5000..250000 stretched onto 0..255, not clipped


def test_text_without_a_vocabulary_word_is_masked_and_counted(tmp_path: Path) -> None:
    """A plot whose TF-IDF row is all zeros (no word in the train vocabulary) is masked and
    counted as text_no_vocabulary_word, not stored as a present zero vector."""
    rows = [{"id": f"m{i}", "plot": "love story" if i % 2 else "laughs galore", "genres": "Drama",
             "split": "train" if i < 12 else "test"} for i in range(16)]
    rows[13]["plot"] = "zzzz qqqq"
    csv_path = tmp_path / "t.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = runner.invoke(app, ["extract", "--data", str(csv_path), "--format", "table", "--encoder", "tfidf",
                            "-o", "min_df=1", "--id-col", "id", "--text-col", "plot", "--label-col", "genres",
                            "--split-col", "split", "--out", str(tmp_path / "c"), "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "text_no_vocabulary_word=1" in r.output
    import h5py

    with h5py.File(next((tmp_path / "c").glob("*.h5")), "r") as f:
        ids = f["ids"].asstr()[...].tolist()
        assert not f["present"][ids.index("m13")] and f["present"][ids.index("m12")]
