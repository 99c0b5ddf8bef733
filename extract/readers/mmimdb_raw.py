"""Reader for the raw MM-IMDb layout (Arevalo et al. 2017, arXiv:1702.01992).

``<root>/dataset/<id>.json`` + ``<id>.jpeg`` per movie and ``<root>/split.json``
({"train": [...], "dev": [...], "test": [...]}); ``root`` may also be the ``dataset``
folder itself, with ``split.json`` inside it or beside it. Each JSON holds ``plot`` (a
list of plot summaries), ``genres`` (a list) and metadata (title, year, director, cast,
...), kept in ``Record.meta``. Images are not opened here: the path is recorded even when
the file is missing, and the extractor masks missing or corrupt posters.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extract.readers.finish import finish, resolve
from extract.readers.text import read_utf8
from extract.dataset_config import PLOT_CHOICES  # --plot choices (defined with DatasetConfig)
from extract.records import UNSPLIT, Dataset, Record

if TYPE_CHECKING:
    from extract.dataset_config import DatasetConfig

SPLIT_FILE_NAME = "split.json"


def _data_dir(root: Path) -> Path:
    return root / "dataset" if (root / "dataset").is_dir() else root


def looks_like_mmimdb(root: Path) -> bool:
    """A ``dataset/`` folder of ``<id>.json`` movies, or a folder of them with a split.json
    or an ``<id>.jpeg`` beside one (a lone JSON file does not make a folder MM-IMDb)."""
    if not root.is_dir():
        return False
    data = _data_dir(root)
    movies = [p for p in data.glob("*.json") if p.name != SPLIT_FILE_NAME][:50]
    return bool(movies) and (data != root or _find_split_file(root, data) is not None
                             or any(p.with_suffix(".jpeg").exists() for p in movies))


def choose_plot(plot: Any, how: str) -> str:
    """One plot text from the list of summaries: the longest, the first, or all joined."""
    if how not in PLOT_CHOICES:
        raise ValueError(f"Unknown plot choice {how!r} (--plot); choose from {list(PLOT_CHOICES)}")
    if plot is None:
        return ""
    items = [plot] if isinstance(plot, str) else [str(p) for p in plot]
    items = [p.strip() for p in items if p and p.strip()]
    if not items:
        return ""
    if how == "first":
        return items[0]
    if how == "all":
        return " ".join(items)
    return max(items, key=len)  # max keeps the first of equally long ones


def _find_split_file(root: Path, data: Path) -> Path | None:
    for cand in (root / SPLIT_FILE_NAME, data / SPLIT_FILE_NAME, data.parent / SPLIT_FILE_NAME):
        if cand.is_file():
            return cand
    return None


# IMDbPY-style keys of MM-IMDb's json -> the metadata field names every reader uses (those of
# the poster subset's metadata.csv), so `-o fields=keywords,countries` means the same everywhere.
_META_ALIASES = {"keywords": ("plot keywords",), "countries": ("country",), "languages": ("language",),
                 "companies": ("production companies",), "writer": ("writers",), "director": ("directors",)}


def _canonical_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Add the canonical name of a field the json holds under an alias (the alias stays too)."""
    for name, aliases in _META_ALIASES.items():
        if name not in meta:
            found = next((a for a in aliases if a in meta), None)
            if found is not None:
                meta[name] = meta[found]
    return meta


def read_mmimdb(cfg: "DatasetConfig") -> Dataset:
    """Read a raw MM-IMDb folder into a Dataset (text field ``plot``, image ``<id>.jpeg``)."""
    root = Path(cfg.path)
    if not root.is_dir():
        raise FileNotFoundError(f"MM-IMDb folder {root} not found (--data)")
    data = _data_dir(root)
    files = sorted(p for p in data.glob("*.json") if p.name != SPLIT_FILE_NAME)
    if not files:
        raise FileNotFoundError(f"no <id>.json movie files in {data} (--data); "
                                "expected the MM-IMDb layout <root>/dataset/<id>.json")
    if cfg.limit is not None:
        files = files[: cfg.limit]
    records = []
    for f in files:
        try:
            doc = json.loads(read_utf8(f, "--data"))  # non-UTF-8: one line naming the file and line
        except json.JSONDecodeError as e:
            raise ValueError(f"bad MM-IMDb JSON file {f}: {e}; fix or remove it") from e
        if not isinstance(doc, dict):
            raise ValueError(f"bad MM-IMDb JSON file {f}: expected an object with 'plot' and 'genres'")
        genres = doc.get("genres") or []
        records.append(Record(
            id=f.stem,
            image=data / f"{f.stem}.jpeg",
            texts={"plot": choose_plot(doc.get("plot"), cfg.plot)},
            labels=[genres] if isinstance(genres, str) else [str(g) for g in genres],
            split=UNSPLIT,
            meta=_canonical_meta({k: v for k, v in doc.items() if k not in ("plot", "genres")}),
        ))
    report: dict[str, Any] = {"format": "mmimdb", "notes": []}
    if cfg.split_file is not None:
        split_file = resolve(cfg.split_file, root)
    elif cfg.split_seed is None:
        split_file = _find_split_file(root, data)
        if split_file is None:
            report["notes"].append(f"no {SPLIT_FILE_NAME} found in or beside {data}")
    else:
        split_file = None
    name = root.parent.name if root.name == "dataset" else root.name
    return finish(cfg, name, records, report, split_file)
