"""Open one poster the same way everywhere (extract workers, predict).

A poster is decoded fully (a truncated file fails here, not inside a batch), turned
upright by its EXIF orientation tag (`PIL.ImageOps.exif_transpose`: phone photos and some
scans are stored sideways with a tag saying so) and converted to RGB. Anything that is not
a readable image of a sane size comes back as a status, never an exception, so one bad
file is masked and counted instead of ending a run.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

OK, FILE_MISSING, CORRUPT = 0, 1, 2
# Pillow's own guard against decompression bombs (~89 Mpixel warns, twice that raises).
# Both are treated as corrupt: a 15000x15000 "poster" would take gigabytes to decode.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# Recorded in every image cache's preprocess attrs (and so in its settings hash).
LOADING = {"decode": "PIL full decode", "exif_transpose": True, "mode": "RGB", "max_pixels": MAX_PIXELS}


def load_image(path: str | Path) -> tuple[int, Image.Image | None, str]:
    """(status, RGB image or None, reason): OK, FILE_MISSING or CORRUPT (reason says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                return OK, im.convert("RGB"), ""  # convert forces the full decode
    except FileNotFoundError:
        return FILE_MISSING, None, f"{path}: no such file"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return CORRUPT, None, f"{path}: too large to decode safely ({e})"
    except Exception as e:  # noqa: BLE001
        # Malformed files make Pillow raise UnidentifiedImageError, OSError, SyntaxError,
        # ValueError, but also struct.error, EOFError, IndexError...: one bad poster is masked
        # and counted, it never ends a run of thousands.
        return CORRUPT, None, f"{path}: not a readable image ({type(e).__name__}: {e})"
