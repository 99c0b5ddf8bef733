"""OCR engines (registry `OCR_ENGINES`): read the text lines printed on one poster.

Paper 004 (Nareti et al., Sec. III) reads poster text with Gemini-Pro-Vision, a hosted model;
here the default is RapidOCR (PP-OCRv4 detection + recognition as ONNX models that ship inside
the `rapidocr-onnxruntime` wheel, so OCR runs offline from a plain install). Tesseract is
the optional second engine (Debian's `tesseract-ocr` package; `apt install tesseract-ocr`).

An engine returns `Line`s (text, confidence, top-left corner, height); `reading_order` sorts
them top to bottom, then left to right, and the step joins them with spaces.

RapidOCR defaults differ from the library's own for small posters (the subset's are 150x300):
its detector rescales the SHORTER side to 736 px (5x here), which costs time and finds the
same text; `det_limit_side_len=480` is ~1.4x faster with near-identical lines on the real
subset, and the 180-degree angle classifier (`use_cls`) is off: poster titles are upright.
Any RapidOCR setting can be given as `-o key=value` (det_limit_side_len, text_score,
box_thresh, use_cls...); the engine's version and options are hashed into the output's name.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image


@dataclass
class Line:
    text: str
    confidence: float  # in [0, 1]
    x: float  # left edge, px
    y: float  # top edge, px
    height: float  # px


def reading_order(lines: list[Line]) -> list[Line]:
    """Top to bottom, then left to right: lines whose tops are within half a line height of
    each other are one row."""
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda l: l.y):
        if rows and abs(ln.y - rows[-1][0].y) < 0.5 * max(rows[-1][0].height, 1.0):
            rows[-1].append(ln)
        else:
            rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda l: l.x)]


class OCREngine:
    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(self.defaults)) if self.strict_options else []
        if unknown:
            raise ValueError(f"OCR engine {self.name!r} has no option(s) {unknown}; options: {sorted(self.defaults)}")
        self.options = {**self.defaults, **(options or {})}
        self._impl: Any = None

    strict_options: ClassVar[bool] = True

    def version(self) -> str:
        raise NotImplementedError

    def check_installed(self) -> None:
        """Raise one line saying how to install the engine when it is not there."""

    def read(self, image: Image.Image) -> list[Line]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "version": self.version(), "options": self.options}


OCR_ENGINES: dict[str, type[OCREngine]] = {}


def register_engine(cls: type[OCREngine]) -> type[OCREngine]:
    OCR_ENGINES[cls.name] = cls
    return cls


def create_engine(name: str, options: dict[str, Any] | None = None) -> OCREngine:
    if name not in OCR_ENGINES:
        raise ValueError(f"Unknown OCR engine {name!r}; choose from {sorted(OCR_ENGINES)}")
    engine = OCR_ENGINES[name](options)
    engine.check_installed()
    return engine


@register_engine
class RapidOCR(OCREngine):
    name = "rapidocr"
    defaults = {"det_limit_side_len": 480, "use_cls": False, "text_score": 0.5}
    strict_options = False  # every RapidOCR parameter (det_*, rec_*, cls_*, global ones) passes through

    def check_installed(self) -> None:
        try:
            import rapidocr_onnxruntime  # noqa: F401
        except ImportError:
            raise ValueError("OCR engine 'rapidocr' is not installed: pip install rapidocr-onnxruntime "
                             "(make setup installs it)") from None

    def version(self) -> str:
        """Package version plus a hash of the ONNX model files (a new model changes the texts)."""
        import rapidocr_onnxruntime

        h = hashlib.sha256()
        for f in sorted((Path(rapidocr_onnxruntime.__file__).parent / "models").glob("*.onnx")):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
        return f"{importlib.metadata.version('rapidocr-onnxruntime')}+models-{h.hexdigest()[:10]}"

    def read(self, image: Image.Image) -> list[Line]:
        if self._impl is None:
            from rapidocr_onnxruntime import RapidOCR as _Rapid

            build = {k: v for k, v in self.options.items() if k != "use_cls"}
            self._impl = _Rapid(**build)
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1]  # BGR, as RapidOCR reads files with OpenCV
        result, _ = self._impl(np.ascontiguousarray(arr), use_cls=bool(self.options["use_cls"]))
        lines = []
        for box, text, score in result or []:
            ys, xs = [p[1] for p in box], [p[0] for p in box]
            lines.append(Line(str(text), float(score), float(min(xs)), float(min(ys)), float(max(ys) - min(ys))))
        return lines


@register_engine
class Tesseract(OCREngine):
    name = "tesseract"
    defaults = {"lang": "eng", "psm": 11, "min_confidence": 50}  # psm 11: sparse text, posters

    def check_installed(self) -> None:
        if shutil.which("tesseract") is None:
            raise ValueError("OCR engine 'tesseract' is not installed: apt install tesseract-ocr "
                             "(or use --engine rapidocr, installed with the project)")

    def version(self) -> str:
        out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).splitlines()[0].strip()

    def read(self, image: Image.Image) -> list[Line]:
        """Words from `tesseract - - tsv` above min_confidence, grouped into its own lines."""
        import io

        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        o = self.options
        out = subprocess.run(["tesseract", "-", "-", "-l", str(o["lang"]), "--psm", str(o["psm"]), "tsv"],
                             input=buf.getvalue(), capture_output=True, check=True).stdout.decode("utf-8", "replace")
        words: dict[tuple[str, str, str], list[list[str]]] = {}
        for row in out.splitlines()[1:]:
            f = row.split("\t")
            if len(f) == 12 and f[11].strip() and float(f[10]) >= o["min_confidence"]:
                words.setdefault((f[2], f[3], f[4]), []).append(f)
        return [Line(" ".join(w[11] for w in ws), float(np.mean([float(w[10]) for w in ws])) / 100,
                     float(ws[0][6]), float(ws[0][7]), float(max(int(w[9]) for w in ws))) for ws in words.values()]
