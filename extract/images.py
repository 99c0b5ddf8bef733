"""Open one poster the same way everywhere (extract workers, predict).

A poster is decoded fully (a truncated file fails here, not inside a batch), turned
upright by its EXIF orientation tag (`PIL.ImageOps.exif_transpose`: phone photos and some
scans are stored sideways with a tag saying so) and converted to RGB. Anything that is not
a readable image of a sane size comes back as a status, never an exception, so one bad
file is masked and counted instead of ending a run.

Images with more than 8 bits per sample are scaled to 0..255 before the RGB conversion,
because Pillow's ``convert("RGB")`` clips them instead (a 16-bit PNG comes out nearly
white, a 0..1 float TIFF black). The rule, by Pillow mode:

- ``I;16*`` (16-bit PNG/TIFF): value / 257, so 0..65535 maps onto 0..255 exactly.
- ``I`` (32-bit integers): kept when every value is in 0..255; treated as 16-bit (/ 257)
  when every value is in 0..65535 (some Pillow versions open 16-bit PNGs as ``I``);
  otherwise stretched from its own min..max onto 0..255.
- ``F`` (32-bit floats): clipped to 0..1 and scaled by 255 when the maximum is at most 1,
  else clipped to 0..255; NaN becomes 0.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

OK, FILE_MISSING, CORRUPT = 0, 1, 2
# Pillow's own guard against decompression bombs (~89 Mpixel warns, twice that raises).
# Both are treated as corrupt: a 15000x15000 "poster" would take gigabytes to decode.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# Recorded in every image cache's preprocess attrs (and so in its settings hash).
LOADING = {"decode": "PIL full decode", "exif_transpose": True, "mode": "RGB", "max_pixels": MAX_PIXELS,
           "deep_samples": "I;16 /257; I 0..255 kept, 0..65535 /257, else min-max; F 0..1 x255 else clip 0..255"}


def _to_8bit(im: Image.Image) -> Image.Image:
    """An ``I;16*``, ``I`` or ``F`` image as an 8-bit ``L`` image (module docstring: the rule);
    any other mode unchanged."""
    if not (im.mode.startswith("I") or im.mode == "F"):
        return im
    a = np.asarray(im)
    if im.mode == "F":
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        top = 1.0 if a.size and a.max() <= 1.0 else 255.0
        a = np.clip(a, 0.0, top) * (255.0 / top)
    else:
        a = a.astype(np.float64)
        lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
        if im.mode == "I" and lo >= 0 and hi <= 255:
            pass  # 8-bit values stored as 32-bit integers
        elif im.mode != "I" or (lo >= 0 and hi <= 65535):
            a = a / 257.0  # a 16-bit sample: 65535 / 257 = 255
        else:  # outside 0..65535: its own range onto 0..255 (one flat value: all black)
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.rint(a).astype(np.uint8))  # (H, W) uint8: mode L


def load_image(path: str | Path) -> tuple[int, Image.Image | None, str]:
    """(status, RGB image or None, reason): OK, FILE_MISSING or CORRUPT (reason says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                return OK, _to_8bit(im).convert("RGB"), ""  # convert forces the full decode
    except FileNotFoundError:
        return FILE_MISSING, None, f"{path}: no such file"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return CORRUPT, None, f"{path}: too large to decode safely ({e})"
    except Exception as e:  # noqa: BLE001
        # Malformed files make Pillow raise UnidentifiedImageError, OSError, SyntaxError,
        # ValueError, but also struct.error, EOFError, IndexError...: one bad poster is masked
        # and counted, it never ends a run of thousands.
        return CORRUPT, None, f"{path}: not a readable image ({type(e).__name__}: {e})"
