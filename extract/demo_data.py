"""A small synthetic movie data set in the MM-IMDb raw layout, for the demo and the tests.

`make_demo_dataset(out_dir)` writes::

    <out_dir>/dataset/<id>.json     {"plot": [1-3 strings], "genres": [...], "title", "year", ...}
    <out_dir>/dataset/<id>.jpeg     200x300 poster
    <out_dir>/split.json            {"train": [ids], "dev": [ids], "test": [ids]}  (~60/10/30)
    <out_dir>/demo_truth.json       per id: which modality shows each genre (for analysis only)
    <out_dir>/demo_dataset.json     marker with (n, seed, version), written last

The data are built so that multimodal fusion matters. For each movie and each of its genres
a hidden variable decides whether the genre is shown in the poster only, in the plot only, or
in both (`EVIDENCE_PROBS`). Posters carry genre evidence an ImageNet CNN can see (palettes,
shapes, textures drawn with PIL: Horror is dark red with jagged shapes, Comedy bright yellow
with circles, Sci-Fi navy with cyan grids and stars, ...); plots carry it in wording ("a
haunted house", "falls in love", "laser rifle", ...) mixed with neutral filler. So a
poster-only or plot-only classifier can find at most the genres its modality shows, while a
fusion of the two can find all of them. A few distractors (a small motif or a sentence from a
genre the movie does not have) add realism, two posters are missing and one plot is empty so
the demo shows how those are masked and counted.

Generation is deterministic by seed (same seed -> byte-identical files) and idempotent: a
second call with the same (n, seed) finds the marker and returns without writing. Files are
built in a temporary folder and moved into place before the marker is written, so an
interrupted run never leaves a data set that looks complete.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from extract.records import MMIMDB_GENRES

# Bump when the generator changes its output, so old demo folders are rebuilt, not reused.
GENERATOR_VERSION = 1
MARKER_FILE = "demo_dataset.json"
TRUTH_FILE = "demo_truth.json"
POSTER_SIZE = (200, 300)  # (width, height), about MM-IMDb's poster aspect
JPEG_QUALITY = 90

# Genre -> relative frequency (Drama and Comedy most common, as in MM-IMDb).
GENRE_WEIGHTS = {
    "Drama": 1.5, "Comedy": 1.3, "Action": 1.0, "Romance": 1.0,
    "Horror": 0.8, "Sci-Fi": 0.8, "Animation": 0.7, "Western": 0.6,
}
DEMO_GENRES = list(GENRE_WEIGHTS)
# Probability that a movie has 1, 2 or 3 genres.
N_GENRE_PROBS = (0.45, 0.35, 0.20)
# Where one (movie, genre) pair shows its evidence: poster only, plot only, or both.
EVIDENCE_PROBS = {"image": 0.4, "text": 0.4, "both": 0.2}
# Chance that a movie gets a cue of a genre it does not have, per modality.
DISTRACTOR_PROB = 0.08
SPLIT_FRACTIONS = {"train": 0.6, "dev": 0.1}  # the rest is test

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1)

assert all(g in MMIMDB_GENRES for g in DEMO_GENRES)


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


# ----------------------------------------------------------------------------- plots

_NAMES = ["Anna", "Ben", "Clara", "David", "Elena", "Frank", "Grace", "Hugo", "Iris", "Jack",
          "Kate", "Leo", "Maya", "Nick", "Olga", "Paul", "Rosa", "Sam", "Tom", "Vera"]
_SURNAMES = ["Adler", "Brooks", "Castro", "Dunn", "Ellis", "Fischer", "Grant", "Hale", "Ivanov",
             "Jensen", "Keller", "Lopez", "Moreau", "Novak", "Ortiz", "Price", "Quinn", "Reyes"]
_JOBS = ["nurse", "bank clerk", "student", "taxi driver", "teacher", "journalist", "mechanic",
         "lawyer", "cook", "librarian"]
_PLACES = ["Chicago", "a small coastal town", "Lisbon", "the suburbs", "Vienna", "a mountain village",
           "Toronto", "a busy harbour city"]
_RELATIONS = ["an older sister", "a grandmother", "two roommates", "a cousin", "an old friend"]

# Genre -> sentences whose wording carries the genre ({n} is a first name).
_PLOT_TEMPLATES: dict[str, list[str]] = {
    "Horror": [
        "{n} moves into a haunted house where something evil waits in the cellar.",
        "A series of gruesome killings terrifies the town, and the bodies are never whole.",
        "Every night the ghost of a drowned girl whispers {n}'s name in the dark.",
        "A demon possesses {n}'s younger brother after a seance goes wrong.",
        "A monster in the woods hunts anyone who strays from the path, leaving only blood.",
        "The screams from the abandoned asylum grow louder as the curse spreads.",
        "A masked killer stalks the teenagers one by one through the night.",
    ],
    "Comedy": [
        "{n} pretends to be a millionaire to impress the neighbours, with hilarious results.",
        "A clumsy waiter is mistaken for the mayor's bodyguard and chaos ensues.",
        "The wedding cake is delivered to the wrong party, and one silly mix-up follows another.",
        "{n} and a wisecracking parrot enter a ridiculous cooking contest.",
        "An awkward misunderstanding turns the family reunion into a farce full of pranks.",
        "Two hopeless slackers accidentally start a funny business selling jokes.",
    ],
    "Romance": [
        "{n} falls in love with a stranger met on the night train.",
        "Two rivals slowly realise they are meant for each other and share a first kiss.",
        "A summer romance turns into a love that neither of them can forget.",
        "{n} must choose between a fiance and a first love who has come back.",
        "A chance meeting at the harbour blossoms into a tender love affair.",
        "Heartbroken after a divorce, {n} finds love again with a charming widower.",
    ],
    "Sci-Fi": [
        "In the distant future, a starship crew discovers an alien signal from a dead planet.",
        "A rogue android escapes the laboratory armed with a laser rifle.",
        "Scientists open a portal to a parallel universe and something comes through.",
        "The colony on Mars loses contact with Earth as the robots stop obeying.",
        "{n} is cloned by a corporation that controls time travel.",
        "An astronaut wakes from cryosleep on a spaceship drifting through the galaxy.",
    ],
    "Action": [
        "A former special forces soldier battles a gang of heavily armed mercenaries.",
        "Car chases, gunfights and explosions follow {n} across the city.",
        "An elite commando must defuse a terrorist bomb before midnight.",
        "{n} fights through a skyscraper full of hijackers with nothing but fists and a pistol.",
        "A rogue agent is hunted by assassins and must shoot first to survive.",
        "A daring heist ends in a high-speed chase and a massive explosion.",
    ],
    "Western": [
        "A lone gunslinger rides into a dusty frontier town.",
        "The sheriff must protect the ranch from a gang of outlaws.",
        "Cattle rustlers and bounty hunters clash on the open prairie.",
        "{n} seeks revenge on the bandits who burned the homestead and stole the horses.",
        "A showdown at high noon decides the fate of the saloon and the whole territory.",
        "A cowboy drives the herd across the desert toward the railroad.",
    ],
    "Animation": [
        "A talking rabbit and a brave little robot set off on a colourful cartoon adventure.",
        "In an enchanted kingdom of talking animals, a tiny dragon learns to sing.",
        "A toy comes to life and befriends the other toys in the attic.",
        "The animals of the jungle team up to rescue their friend, a clumsy baby elephant.",
        "A curious little fox and a singing snowman explore a magical candy land.",
        "A young mermaid and her talking fish friend search for a lost treasure.",
    ],
    "Drama": [
        "{n} struggles to cope with grief after the sudden death of a parent.",
        "A troubled family is torn apart by addiction and years of silence.",
        "An ageing teacher faces a terminal illness and the regrets of a lifetime.",
        "{n} fights to keep custody of a child while losing the job and the house.",
        "A quiet father and his estranged son must face the past at a hospital bedside.",
        "After prison, {n} tries to rebuild a life and earn forgiveness.",
    ],
}
# Genre -> a sentence that uses the genre's vocabulary without the movie being of that genre.
_TEXT_DISTRACTORS = {
    "Horror": "{n} reads ghost stories to fall asleep.",
    "Comedy": "{n}'s uncle tells silly jokes at every dinner.",
    "Romance": "A poster of a famous love story hangs in the hallway.",
    "Sci-Fi": "{n} keeps a toy spaceship on the desk.",
    "Action": "The neighbours watch noisy action movies late at night.",
    "Western": "{n}'s grandfather once worked on a cattle ranch.",
    "Animation": "On Sundays {n} watches cartoons with the kids.",
    "Drama": "{n} once visited a sick friend in hospital.",
}
_FILLER = [
    "The story follows {n} {s}, a {job} from {place}.",
    "{n} lives with {rel} and works long hours.",
    "Years later, much has changed.",
    "Along the way, old friendships are tested.",
    "Nothing will ever be the same again.",
    "The events take place over a single week.",
    "A letter arrives that nobody expected.",
    "{n} has always wanted to leave {place}.",
    "Secrets from the past come to the surface.",
    "It all begins on an ordinary Monday morning.",
]


def _sentence(template: str, rng: np.random.Generator, name: str, surname: str) -> str:
    return template.format(n=name, s=surname, job=_JOBS[rng.integers(len(_JOBS))],
                           place=_PLACES[rng.integers(len(_PLACES))], rel=_RELATIONS[rng.integers(len(_RELATIONS))])


def _plot(genres: list[str], distractor: str | None, rng: np.random.Generator, long: bool) -> str:
    """One plot: an opening line, 1-2 sentences per genre shown in text, filler, maybe a distractor."""
    name, surname = _NAMES[rng.integers(len(_NAMES))], _SURNAMES[rng.integers(len(_SURNAMES))]
    body = []
    for g in genres:
        picks = rng.choice(len(_PLOT_TEMPLATES[g]), size=int(rng.integers(1, 3)), replace=False)
        body += [_PLOT_TEMPLATES[g][i] for i in picks]
    n_fill = int(rng.integers(2, 5)) if long else int(rng.integers(0, 2))
    body += [_FILLER[i] for i in rng.choice(np.arange(1, len(_FILLER)), size=n_fill, replace=False)]
    if distractor is not None:
        body.append(_TEXT_DISTRACTORS[distractor])
    sentences = [body[i] for i in rng.permutation(len(body))]
    if long or rng.random() < 0.5:  # an opening line introducing the lead
        sentences.insert(0, _FILLER[0])
    return " ".join(_sentence(t, rng, name, surname) for t in sentences)


_TITLE_A = ["Last", "Silent", "Long", "Second", "Hidden", "Broken", "Golden", "Quiet", "Distant", "Final"]
_TITLE_B = ["Road", "Morning", "Promise", "Letter", "Summer", "Station", "River", "Window", "Bridge", "Game"]


# ----------------------------------------------------------------------------- one movie

def _movie(i: int, seed: int) -> tuple[dict, Image.Image, dict]:
    """Record json, poster and hidden truth of movie number i; depends only on (i, seed)."""
    rng = np.random.default_rng([seed, i])
    weights = np.array(list(GENRE_WEIGHTS.values()))
    k = int(rng.choice([1, 2, 3], p=N_GENRE_PROBS))
    picks = rng.choice(len(DEMO_GENRES), k, replace=False, p=weights / weights.sum())
    genres = [DEMO_GENRES[j] for j in sorted(picks)]
    modes = list(EVIDENCE_PROBS)
    evidence = {g: modes[rng.choice(len(modes), p=list(EVIDENCE_PROBS.values()))] for g in genres}
    others = [g for g in DEMO_GENRES if g not in genres]
    distract = {m: others[rng.integers(len(others))] if rng.random() < DISTRACTOR_PROB else None
                for m in ("image", "text")}
    in_image = [g for g in genres if evidence[g] in ("image", "both")]
    in_text = [g for g in genres if evidence[g] in ("text", "both")]
    poster = _poster(in_image, distract["image"], rng)
    n_plots = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    plots = [_plot(in_text, distract["text"], rng, long=(j == 0)) for j in range(n_plots)]
    people = [f"{_NAMES[a]} {_SURNAMES[b]}" for a, b in zip(rng.integers(len(_NAMES), size=5),
                                                              rng.integers(len(_SURNAMES), size=5))]
    record = {
        "title": f"The {_TITLE_A[rng.integers(10)]} {_TITLE_B[rng.integers(10)]}",
        "year": int(rng.integers(1950, 2018)),
        "director": people[0],
        "cast": people[1:1 + int(rng.integers(2, 5))],
        "genres": genres,
        "plot": plots,
    }
    truth = {"evidence": evidence, "distractor": distract}
    return record, poster, truth


# ----------------------------------------------------------------------------- on disk

def _marker(n: int, seed: int, complete: bool) -> dict:
    return {"generator": "mmgenre demo", "version": GENERATOR_VERSION, "n": n, "seed": seed, "complete": complete}


def _write_json_atomic(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _is_complete(out_dir: Path, n: int, seed: int) -> bool:
    try:
        marker = json.loads((out_dir / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    if marker != _marker(n, seed, True) or not (out_dir / "split.json").is_file():
        return False
    return sum(1 for _ in (out_dir / "dataset").glob("*.json")) == n


def _generate(tmp: Path, n: int, seed: int) -> None:
    """Write dataset/, split.json and the truth file of a fresh data set into tmp."""
    rng = np.random.default_rng(seed)
    ids = [f"{v + 1:07d}" for v in rng.choice(9_999_999, size=n, replace=False)]  # IMDb-like, unique
    order = rng.permutation(n)
    n_train, n_dev = round(n * SPLIT_FRACTIONS["train"]), round(n * SPLIT_FRACTIONS["dev"])
    split = {
        "train": sorted(ids[i] for i in order[:n_train]),
        "dev": sorted(ids[i] for i in order[n_train:n_train + n_dev]),
        "test": sorted(ids[i] for i in order[n_train + n_dev:]),
    }
    # The few awkward records: posters missing in train and test, an empty plot in test.
    no_poster = {split["train"][0], split["test"][0]}
    empty_plot = {split["test"][1]}
    (tmp / "dataset").mkdir()
    truth: dict[str, dict] = {}
    for i, mid in enumerate(ids):
        record, poster, truth[mid] = _movie(i, seed)
        if mid in empty_plot:
            record["plot"] = [""]
        truth[mid].update(poster_missing=mid in no_poster, plot_empty=mid in empty_plot)
        (tmp / "dataset" / f"{mid}.json").write_text(json.dumps(record, indent=1) + "\n")
        if mid not in no_poster:
            # Fixed quality and subsampling, no EXIF: same pixels -> same bytes.
            poster.save(tmp / "dataset" / f"{mid}.jpeg", format="JPEG", quality=JPEG_QUALITY, subsampling=2)
    (tmp / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    (tmp / TRUTH_FILE).write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")


def make_demo_dataset(out_dir: Path, n: int = 600, seed: int = 0) -> Path:
    """Write the synthetic demo data set in MM-IMDb raw layout under out_dir and return out_dir.

    Returns at once, writing nothing, when out_dir already holds a complete demo data set made
    with the same (n, seed). Refuses (ValueError) to overwrite a `dataset/` or `split.json`
    that this function did not make. Stale `.demo-tmp-*` folders of interrupted runs are removed.
    """
    if n < 20:
        raise ValueError(f"n={n} is too small for a demo data set with train/dev/test splits; use n >= 20")
    out_dir = Path(out_dir)
    if _is_complete(out_dir, n, seed):
        return out_dir
    owned = (out_dir / MARKER_FILE).is_file()
    if not owned and ((out_dir / "dataset").exists() or (out_dir / "split.json").exists()):
        raise ValueError(f"{out_dir} already holds a data set that is not a demo data set; "
                         "pass an empty or new folder to make_demo_dataset")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".demo-tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=out_dir))
    try:
        _generate(tmp, n, seed)
        # Claim the folder as incomplete before touching the old files, then swap them in.
        _write_json_atomic(out_dir / MARKER_FILE, _marker(n, seed, False))
        for name in ("dataset", "split.json", TRUTH_FILE):
            old = out_dir / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
            os.replace(tmp / name, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_json_atomic(out_dir / MARKER_FILE, _marker(n, seed, True))  # last: the data set is complete
    return out_dir


def load_demo_truth(out_dir: Path) -> dict[str, dict]:
    """The hidden per-movie truth: {id: {"evidence": {genre: "image"|"text"|"both"}, ...}}."""
    path = Path(out_dir) / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {TRUTH_FILE} in {out_dir}; run make_demo_dataset({str(out_dir)!r}) first")
    return json.loads(path.read_text())
