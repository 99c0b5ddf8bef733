"""Poster drawing for the demo data set: genre-dependent palettes, shapes and textures (PIL).

Each genre's painter draws into one vertical column of the poster; see extract/demo/data.py.
"""
from __future__ import annotations

from pathlib import Path

import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

POSTER_SIZE = (200, 300)  # (width, height), about MM-IMDb's poster aspect
Color = tuple[int, int, int]
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1)

# ----------------------------------------------------------------------------- posters

def _jit(rng: np.random.Generator, c: Color, amt: int = 20) -> Color:
    return tuple(int(np.clip(v + rng.integers(-amt, amt + 1), 0, 255)) for v in c)  # type: ignore[return-value]


def _gradient(draw: ImageDraw.ImageDraw, box: Box, top: Color, bottom: Color) -> None:
    x0, y0, x1, y1 = box
    h = max(y1 - y0 - 1, 1)
    for y in range(y0, y1):
        t = (y - y0) / h
        draw.line([(x0, y), (x1 - 1, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))


def _star(cx: float, cy: float, r_out: float, r_in: float, k: int, rng: np.random.Generator,
          rough: float = 0.0) -> list[tuple[float, float]]:
    """Vertices of a k-spiked star (jagged with rough > 0), for explosions and horror shards."""
    pts = []
    phase = rng.uniform(0, 2 * math.pi)
    for i in range(2 * k):
        r = (r_out if i % 2 == 0 else r_in) * (1 + rough * rng.uniform(-1, 1))
        a = phase + math.pi * i / k
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _point(rng: np.random.Generator, box: Box) -> tuple[int, int]:
    x0, y0, x1, y1 = box
    return int(rng.integers(x0, max(x1, x0 + 1))), int(rng.integers(y0, max(y1, y0 + 1)))


def _horror(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    x0, y0, x1, y1 = box
    s = min(x1 - x0, y1 - y0)
    if bg:
        _gradient(draw, box, _jit(rng, (8, 0, 0), 8), _jit(rng, (95, 5, 10)))
        for _ in range(rng.integers(4, 10)):  # blood drips from the top edge
            x = int(rng.integers(x0, x1))
            draw.line([(x, y0), (x, y0 + int(rng.integers(10, max(s // 2, 11))))],
                      fill=_jit(rng, (150, 0, 10)), width=int(rng.integers(2, 5)))
    for _ in range(rng.integers(2, 5) if bg else 1):  # jagged shards
        cx, cy = _point(rng, box)
        r = rng.uniform(0.15, 0.35) * s
        fill = _jit(rng, (160, 10, 15), 30) if rng.random() < 0.6 else _jit(rng, (5, 5, 5), 5)
        draw.polygon(_star(cx, cy, r, r * 0.3, int(rng.integers(6, 11)), rng, rough=0.4), fill=fill)
    if bg and rng.random() < 0.6:  # a pair of eyes in the dark
        cx, cy = _point(rng, box)
        for dx in (-6, 6):
            draw.ellipse([cx + dx - 2, cy - 2, cx + dx + 2, cy + 2], fill=(240, 230, 120))


def _comedy(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    s = min(box[2] - box[0], box[3] - box[1])
    if bg:
        _gradient(draw, box, _jit(rng, (255, 225, 40)), _jit(rng, (255, 240, 130)))
    colors = [(255, 140, 0), (255, 255, 255), (255, 90, 160), (90, 190, 255)]
    for _ in range(rng.integers(5, 12) if bg else 2):
        cx, cy = _point(rng, box)
        r = rng.uniform(0.05, 0.2) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_jit(rng, colors[rng.integers(len(colors))]),
                     outline=(0, 0, 0), width=2)
    if bg and rng.random() < 0.7:  # a smiley
        cx, cy = _point(rng, box)
        r = rng.uniform(0.15, 0.25) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 210, 0), outline=(0, 0, 0), width=3)
        for dx in (-r / 3, r / 3):
            draw.ellipse([cx + dx - 3, cy - r / 3 - 3, cx + dx + 3, cy - r / 3 + 3], fill=(0, 0, 0))
        draw.arc([cx - r / 2, cy - r / 3, cx + r / 2, cy + r / 2], 20, 160, fill=(0, 0, 0), width=3)


def _scifi(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    x0, y0, x1, y1 = box
    if bg:
        _gradient(draw, box, _jit(rng, (5, 8, 35), 8), _jit(rng, (10, 35, 80)))
        for _ in range(rng.integers(30, 80)):  # stars
            x, y = _point(rng, box)
            c = (255, 255, 255) if rng.random() < 0.7 else (120, 255, 255)
            draw.point([(x, y), (x + 1, y)], fill=c)
        hz = int(y0 + (y1 - y0) * rng.uniform(0.4, 0.65))  # perspective grid below a horizon
        vx = int(rng.integers(x0 + 20, max(x1 - 20, x0 + 21)))
        cyan = _jit(rng, (0, 230, 255), 25)
        for i in range(1, 7):
            y = hz + int((y1 - hz) * (i / 6) ** 1.8)
            draw.line([(x0, y), (x1, y)], fill=cyan, width=1)
        for dx in range(-300, 301, 40):
            draw.line([(vx, hz), (vx + dx, y1)], fill=cyan, width=1)
    cx, cy = _point(rng, (x0, y0, x1, (y0 + y1) // 2))
    r = rng.uniform(0.1, 0.22) * min(x1 - x0, y1 - y0) if bg else 8
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_jit(rng, (40, 60, 150)), outline=(0, 255, 255), width=2)


def _western(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    x0, y0, x1, y1 = box
    if bg:
        _gradient(draw, box, _jit(rng, (245, 150, 45)), _jit(rng, (125, 70, 30)))
        cx, cy = _point(rng, (x0, y0, x1, (y0 + y1) // 2))
        r = rng.uniform(0.12, 0.22) * min(x1 - x0, y1 - y0)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_jit(rng, (255, 235, 160)))
        x = x0
        while x < x1:  # mesas along the bottom
            w = int(rng.integers(30, 80))
            h = int((y1 - y0) * rng.uniform(0.1, 0.35))
            draw.polygon([(x, y1), (x + 8, y1 - h), (x + w - 8, y1 - h), (x + w, y1)], fill=_jit(rng, (90, 45, 20)))
            x += w + int(rng.integers(0, 30))
    for _ in range(rng.integers(1, 3) if bg else 1):  # cacti
        cx, base = _point(rng, (x0 + 10, (y0 + y1) // 2, x1 - 10, y1))
        h = int(rng.integers(25, 50)) if bg else 14
        g = _jit(rng, (60, 90, 30))
        draw.rectangle([cx - 3, base - h, cx + 3, base], fill=g)
        draw.rectangle([cx - 10, base - h * 2 // 3, cx - 6, base - h // 3], fill=g)
        draw.rectangle([cx + 6, base - h * 3 // 4, cx + 10, base - h // 2], fill=g)


def _animation(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    s = min(box[2] - box[0], box[3] - box[1])
    if bg:
        _gradient(draw, box, _jit(rng, (225, 240, 255), 15), _jit(rng, (255, 255, 240), 10))
    primaries = [(255, 20, 20), (20, 80, 255), (255, 220, 0), (0, 200, 60), (255, 0, 200)]
    for _ in range(rng.integers(4, 9) if bg else 2):
        cx, cy = _point(rng, box)
        rx, ry = rng.uniform(0.08, 0.25, 2) * s
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=primaries[rng.integers(len(primaries))],
                     outline=(0, 0, 0), width=3)


def _heart(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Color) -> None:
    draw.ellipse([cx - r, cy - r / 2, cx, cy + r / 2], fill=fill)
    draw.ellipse([cx, cy - r / 2, cx + r, cy + r / 2], fill=fill)
    draw.polygon([(cx - r, cy + r / 8), (cx + r, cy + r / 8), (cx, cy + 1.3 * r)], fill=fill)


def _romance(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    s = min(box[2] - box[0], box[3] - box[1])
    if bg:
        _gradient(draw, box, _jit(rng, (255, 190, 210)), _jit(rng, (205, 70, 130)))
        for _ in range(rng.integers(2, 5)):  # soft swirls
            cx, cy = _point(rng, box)
            r = rng.uniform(0.2, 0.5) * s
            draw.arc([cx - r, cy - r, cx + r, cy + r], *sorted(rng.uniform(0, 360, 2)),
                     fill=(255, 235, 245), width=2)
    colors = [(230, 20, 60), (255, 255, 255), (180, 0, 120)]
    for _ in range(rng.integers(2, 6) if bg else 1):
        cx, cy = _point(rng, box)
        _heart(draw, cx, cy, rng.uniform(0.07, 0.2) * s if bg else 8, _jit(rng, colors[rng.integers(3)]))


def _action(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    x0, y0, x1, y1 = box
    s = min(x1 - x0, y1 - y0)
    if bg:
        _gradient(draw, box, _jit(rng, (35, 35, 45), 10), _jit(rng, (85, 70, 55)))
        for _ in range(rng.integers(6, 15)):  # diagonal streaks
            x, y = _point(rng, box)
            ln = rng.uniform(30, 120)
            a = rng.uniform(math.radians(25), math.radians(60)) * (1 if rng.random() < 0.5 else -1)
            c = [(255, 160, 0), (255, 230, 80), (250, 250, 250)][rng.integers(3)]
            draw.line([(x, y), (x + ln * math.cos(a), y - ln * math.sin(a))], fill=c, width=int(rng.integers(2, 5)))
    cx, cy = _point(rng, box)  # explosion
    r = rng.uniform(0.2, 0.4) * s if bg else 10
    outer = _star(cx, cy, r, r * 0.55, int(rng.integers(10, 16)), rng, rough=0.2)
    draw.polygon(outer, fill=_jit(rng, (255, 110, 0)))
    inner = _star(cx, cy, r * 0.55, r * 0.3, int(rng.integers(8, 12)), rng, rough=0.2)
    draw.polygon(inner, fill=_jit(rng, (255, 230, 60)))


def _drama(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator, bg: bool) -> None:
    x0, y0, x1, y1 = box
    if bg:
        _gradient(draw, box, _jit(rng, (70, 80, 100), 10), _jit(rng, (125, 130, 140), 10))
        cx, cy = _point(rng, box)  # a window with a dim lamp
        draw.rectangle([cx - 18, cy - 24, cx + 18, cy + 24], outline=(40, 40, 50), width=3)
        draw.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=_jit(rng, (230, 200, 120)))
    for _ in range(rng.integers(40, 100) if bg else 10):  # rain
        x, y = _point(rng, box)
        ln = rng.uniform(8, 25) if bg else 5
        draw.line([(x, y), (x + ln * 0.15, y + ln)], fill=_jit(rng, (200, 205, 215), 15), width=1)


# One drawing function per genre: (draw, box, rng, bg) -> None. bg=True fills the box as the
# genre's band; bg=False draws one small motif only (a distractor).
_POSTER_MOTIFS: dict[str, Callable[[ImageDraw.ImageDraw, Box, np.random.Generator, bool], None]] = {
    "Drama": _drama, "Comedy": _comedy, "Action": _action, "Romance": _romance,
    "Horror": _horror, "Sci-Fi": _scifi, "Animation": _animation, "Western": _western,
}


def _neutral(draw: ImageDraw.ImageDraw, box: Box, rng: np.random.Generator) -> None:
    """A genre-free poster: muted two-tone gradient with a few plain rectangles."""
    top = tuple(int(v) for v in rng.integers(60, 200, 3))
    bottom = tuple(int(np.clip(v + rng.integers(-50, 51), 0, 255)) for v in top)
    _gradient(draw, box, top, bottom)  # type: ignore[arg-type]
    for _ in range(rng.integers(1, 4)):
        (ax, ay), (bx, by) = _point(rng, box), _point(rng, box)
        draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)],
                       fill=tuple(int(v) for v in rng.integers(40, 220, 3)))


def _poster(genres: list[str], distractor: str | None, rng: np.random.Generator) -> Image.Image:
    """Draw a poster: one vertical column per shown genre, then title, silhouette and noise."""
    w, h = POSTER_SIZE
    img = Image.new("RGB", POSTER_SIZE)
    draw = ImageDraw.Draw(img)
    shown = [genres[i] for i in rng.permutation(len(genres))]
    if not shown:
        _neutral(draw, (0, 0, w, h), rng)
    else:
        # Vertical columns, so an ImageNet-style center crop (which cuts top and bottom) keeps
        # a part of every column.
        cuts = {1: [], 2: [(0.35, 0.65)], 3: [(0.28, 0.38), (0.62, 0.72)]}[len(shown)]
        edges = [0, *(int(rng.uniform(lo, hi) * w) for lo, hi in cuts), w]
        for g, x0, x1 in zip(shown, edges[:-1], edges[1:]):
            _POSTER_MOTIFS[g](draw, (x0, 0, x1, h), rng, True)
    if distractor is not None:  # a small cue of a genre the movie does not have, at one side
        x0, y0 = int(rng.choice([15, w - 55])), int(rng.integers(70, h - 110))
        _POSTER_MOTIFS[distractor](draw, (x0, y0, x0 + 40, y0 + 40), rng, False)
    if rng.random() < 0.4:  # a person's silhouette, genre-free
        cx, base = int(rng.integers(40, w - 40)), h
        tone = tuple(int(v) for v in rng.integers(0, 60, 3))
        draw.ellipse([cx - 14, base - 150, cx + 14, base - 118], fill=tone)
        draw.polygon([(cx - 35, base), (cx - 22, base - 115), (cx + 22, base - 115), (cx + 35, base)], fill=tone)
    if rng.random() < 0.7:  # a title block with text-like dashes, in any colour
        y = int(rng.choice([int(rng.integers(8, 30)), int(rng.integers(h - 60, h - 35))]))
        draw.rectangle([10, y, w - 10, y + 26], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        ink = (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0)
        x = 16
        while x < w - 30:
            ln = int(rng.integers(6, 22))
            draw.rectangle([x, y + 8, x + ln, y + 18], fill=ink)
            x += ln + int(rng.integers(4, 9))
    # Sensor-like noise and a global brightness jitter so colours are never exact.
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.85, 1.15)  # (H, W, 3)
    arr += rng.normal(0.0, 6.0, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))




def print_title(img: Image.Image, title: str) -> None:
    """Print a title (for the `ocr` step) in dark bold capitals on a light banner across the
    middle of a drawn poster, in place, two lines if needed; no randomness."""
    import matplotlib

    draw, w = ImageDraw.Draw(img), img.width
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans-Bold.ttf"), 17)
    words, lines = title.upper().split(), [""]
    for word in words:
        trial = f"{lines[-1]} {word}".strip()
        if draw.textlength(trial, font=font) > w - 24 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = trial
    top = 128
    draw.rectangle([6, top - 6, w - 6, top + 24 * len(lines)], fill=(236, 232, 220))
    for k, line in enumerate(lines):
        draw.text((12, top + 24 * k), line, fill=(20, 20, 20), font=font)
