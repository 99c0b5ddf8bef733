"""A small synthetic movie data set in the MM-IMDb raw layout, for the demo and the tests.

`make_demo_dataset(out_dir)` writes::

    <out_dir>/dataset/<id>.json     {"plot": [1-3 strings], "genres": [...], "title", "year",
                                     "director", "cast", "keywords"}
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
fusion of the two can find all of them. Metadata carries genre evidence of its own: each
genre has a roster of directors, actors and keywords (`genre_people`), and each of a movie's
genres is "shown" in its metadata with probability `META_SHOW_PROB` (a director or actors
from that genre's roster, a genre keyword), independently of poster and plot; the other
names are drawn from a shared pool. So metadata helps, and all three modalities help most,
and the demo exercises metadata encoders (multihot, kg) offline. A few distractors (a small motif or a sentence from a
genre the movie does not have) add realism, two posters are missing and one plot is empty so
the demo shows how those are masked and counted.

Generation is deterministic by seed (same seed -> byte-identical files) and idempotent: a
second call with the same (n, seed) finds the marker and returns without writing. Files are
built in a temporary folder and moved into place before the marker is written, so an
interrupted run never leaves a data set that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cache.store import atomic_write
from extract.demo.plots import _NAMES, _SURNAMES, _TITLE_A, _TITLE_B, _plot
from extract.demo.posters import POSTER_SIZE, _poster, print_title  # noqa: F401  (POSTER_SIZE re-exported)
from extract.records import MMIMDB_GENRES

# Bump when the generator changes its output, so old demo folders are rebuilt, not reused.
GENERATOR_VERSION = 2  # 2: genre-correlated metadata, titles printed on some posters
MARKER_FILE = "demo_dataset.json"
TRUTH_FILE = "demo_truth.json"
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
# Chance that one of a movie's genres shows in its metadata (director, actors, a keyword).
META_SHOW_PROB = 0.5
TITLE_PROB = 0.5  # share of posters with the movie's title printed on them
_GENRE_KEYWORDS = {"Drama": ["family secret", "grief"], "Comedy": ["misunderstanding", "slapstick"],
                   "Action": ["car chase", "shootout"], "Romance": ["first love", "wedding"],
                   "Horror": ["haunting", "slasher"], "Sci-Fi": ["spaceship", "time travel"],
                   "Animation": ["talking animal", "cartoon"], "Western": ["sheriff", "saloon"]}
_PLAIN_KEYWORDS = ["city", "friendship", "journey", "money", "secret", "island", "train", "letter"]

assert all(g in MMIMDB_GENRES for g in DEMO_GENRES)


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
    # About half the posters print the title (for `ocr`), decided on a stream of its own and drawn
    # over the finished poster, so the random draws of everything else are those of version 1
    if np.random.default_rng([seed, i, 2]).random() < TITLE_PROB:
        print_title(poster, record["title"])
    # Metadata from a stream of its own, so posters and plots are those of version 1.
    meta_shows = _metadata(record, genres, np.random.default_rng([seed, i, 1]))
    truth = {"evidence": evidence, "distractor": distract, "meta_shows": meta_shows}
    return record, poster, truth


def genre_people(genre: str) -> dict[str, list[str]]:
    """A genre's roster: 2 directors and 4 actors with names of their own, its keywords."""
    k = DEMO_GENRES.index(genre)
    name = lambda j: f"{_NAMES[(3 * k + j) % len(_NAMES)]} {genre.replace('-', '')}son{j}"  # noqa: E731
    return {"director": [name(0), name(1)], "cast": [name(j) for j in range(2, 6)],
            "keywords": _GENRE_KEYWORDS[genre]}


def _metadata(record: dict, genres: list[str], rng: np.random.Generator) -> list[str]:
    """Set director, cast and keywords of a record (see the module docstring); returns the
    genres its metadata shows."""
    shows = [g for g in genres if rng.random() < META_SHOW_PROB]
    pool = [f"{_NAMES[a]} {_SURNAMES[b]}" for a, b in zip(rng.integers(len(_NAMES), size=6),
                                                         rng.integers(len(_SURNAMES), size=6))]
    rosters = [genre_people(g) for g in shows]
    director = rosters[0]["director"][rng.integers(2)] if rosters else pool[0]
    cast = [r["cast"][j] for r in rosters for j in rng.choice(4, 2, replace=False)] + pool[1:3]
    keywords = [r["keywords"][rng.integers(2)] for r in rosters]
    keywords.append(_PLAIN_KEYWORDS[rng.integers(len(_PLAIN_KEYWORDS))])
    record.update(director=director, cast=cast, keywords=keywords)
    return shows


# ----------------------------------------------------------------------------- on disk

def _marker(n: int, seed: int, complete: bool) -> dict:
    return {"generator": "mmgenre demo", "version": GENERATOR_VERSION, "n": n, "seed": seed, "complete": complete}


def _write_json_atomic(path: Path, obj: object) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


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
