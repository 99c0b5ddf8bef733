"""Shared bits of the benchmarks: where the real subset is, how to skip without it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def subset_dir(arg: str | None) -> Path:
    """--data, else $MMGENRE_SUBSET, else ../shared/data/mmimdb-poster-subset; exit 0 if absent."""
    p = Path(arg or os.environ.get("MMGENRE_SUBSET", REPO.parent / "shared/data/mmimdb-poster-subset"))
    if not (p / "movies.csv").is_file():
        print(f"SKIP: real subset not found at {p} (pass --data or set MMGENRE_SUBSET)")
        sys.exit(0)
    return p
