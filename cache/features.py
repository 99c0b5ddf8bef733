"""Join cache files by id into named modality tensors for head training.

    fs = load_features({"image": "caches/x-image-....h5", "text": "caches/x-text-....h5"})
    rows = fs.rows("train")               # LongTensor of row indices
    feats = fs.batch(rows[:128])          # dict for FusionHead.forward
    fs.Y[rows]                            # (B, C) float targets

Everything is loaded once into memory (and optionally moved to the GPU); a training step
is an index slice, nothing is read from disk per step. Only h5py/numpy/torch are used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.store import CacheError
from cache.read import CacheInfo, check_arrays, open_info, read_arrays


@dataclass
class FeatureSet:
    ids: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str: train/dev/test/none
    label_names: list[str]
    Y: torch.Tensor  # (N, C) float32
    X: dict[str, torch.Tensor]  # modality -> (N, D) float32, zero rows where absent
    present: dict[str, torch.Tensor]  # modality -> (N,) bool
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)  # modality -> (N, T, Dt)
    token_mask: dict[str, torch.Tensor] = field(default_factory=dict)  # modality -> (N, T) bool
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # modality -> cache provenance
    # Per-row extras of metadata caches ("aux.<name>": IDKG's at_label): modality -> name -> (N,)
    # float32, 0 where the row is missing; in a batch as feats[f"{m}.{name}"]
    aux: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    # Per-label extras ("label_extras.<name>": the KG's genre embeddings), rows in label_names
    # order: modality -> name -> (C, D) float32 numpy, NaN rows for labels without one
    label_extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return sorted(self.X)

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(x.shape[1]) for m, x in self.X.items()}

    @property
    def token_dims(self) -> dict[str, int]:
        return {m: int(t.shape[2]) for m, t in self.tokens.items()}

    def rows(self, split: str) -> torch.Tensor:
        return torch.from_numpy(np.flatnonzero(self.split == split)).to(self.Y.device)

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feats dict of FusionHead.forward for rows idx (see train_heads/fusion/base.py)."""
        out: dict[str, torch.Tensor] = {}
        for m in self.X:
            out[m] = self.X[m][idx]
            out[f"{m}.present"] = self.present[m][idx]
            if m in self.tokens:
                out[f"{m}.tokens"] = self.tokens[m][idx]
                out[f"{m}.token_mask"] = self.token_mask[m][idx]
            for name, a in self.aux.get(m, {}).items():
                out[f"{m}.{name}"] = a[idx]
        return out

    def sparse_modalities(self, rows: torch.Tensor, zero_share: float = 0.5) -> list[str]:
        """Modalities whose present `rows` are mostly exact zeros (TF-IDF, multi-hot): over
        `zero_share` of their values. z-scoring those divides rare columns by a tiny std and
        blows them up (a linear head on z-scored TF-IDF: test macro-F1 0.334 vs 0.381 raw on
        the real subset), so `standardize="auto"` leaves them as they are."""
        out = []
        for m, x in sorted(self.X.items()):
            keep = rows[self.present[m][rows]]
            if len(keep) and float((x[keep] == 0).float().mean()) > zero_share:
                out.append(m)
        return out

    def standardize(self, rows: torch.Tensor, only: list[str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """z-score each modality's pooled features (those in `only`, default all) with
        mean/std of `rows` (the train split), counting present items only; absent rows stay
        zero. Returns the statistics.

        Encoders differ by orders of magnitude (MiniLM rows are unit-norm, EfficientNet's
        are not), so without this the larger modality dominates a fusion head's first layer.
        """
        stats = {}
        for m, x in self.X.items():
            if only is not None and m not in only:
                continue
            keep = rows[self.present[m][rows]]
            if len(keep) < 2:  # the std of 0 or 1 rows is NaN: every probability would be NaN
                raise CacheError(f"{self._missing_line(m, rows)}; standardizing needs >= 2 train rows with "
                                 f"{m} features (--no-standardize skips it)")
            mean, std = x[keep].mean(0), x[keep].std(0).clamp_min(1e-6)
            stats[m] = (mean, std)
        self.apply_standardize(stats)
        return stats

    def check_present(self, rows: torch.Tensor) -> None:
        """Refuse a modality that no row of `rows` (the train split) has: the head would learn
        nothing from it and predict would print NaN. Typically a cache made with a wrong
        --image-dir (every poster missing) or --text-field."""
        for m in sorted(self.X):
            if len(rows) and not bool(self.present[m][rows].any()):
                raise CacheError(f"{self._missing_line(m, rows)}; check the extract command that made it "
                                 "(--image-dir, --image-pattern, --text-field...)")

    def _missing_line(self, m: str, rows: torch.Tensor) -> str:
        """'<cache>: no train row has <m> features (N of N missing: <reasons from the cache>)'."""
        src = self.sources.get(m, {})
        path = src.get("path", m)
        n, have = len(rows), int(self.present[m][rows].sum())
        try:
            missing = open_info(path).attrs.get("missing", {}) if "path" in src else {}
        except (CacheError, OSError):
            missing = {}
        why = ", ".join(f"{k}={v}" for k, v in sorted(missing.items()) if k != "ids_first_1000" and v)
        what = "no train row has" if have == 0 else f"only {have} train row(s) have"
        return (f"{path}: {what} {m} features ({n - have} of {n} missing"
                + (f"; in the whole cache: {why}" if why else "") + ")")

    def apply_standardize(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for m, (mean, std) in stats.items():
            x = (self.X[m] - mean.to(self.X[m].device)) / std.to(self.X[m].device)
            self.X[m] = torch.where(self.present[m][:, None], x, torch.zeros((), device=x.device))

    def to(self, device: torch.device | str) -> "FeatureSet":
        mv = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return FeatureSet(self.ids, self.split, self.label_names, self.Y.to(device), mv(self.X),
                          mv(self.present), mv(self.tokens), mv(self.token_mask), self.sources,
                          {m: mv(a) for m, a in self.aux.items()}, self.label_extras)


def resolve_cache(spec: str, cache_dir: str | Path = "caches") -> Path:
    """A cache file path, or an encoder name looked up among the caches in cache_dir."""
    p = Path(spec)
    if p.suffix == ".h5" or p.exists():
        return p
    from cache.read import list_caches

    folder = Path(cache_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{spec!r} is not a file and cache folder {folder} does not exist")
    found = [i.path for i in list_caches(folder) if isinstance(i, CacheInfo) and i.attrs.get("encoder") == spec]
    if not found:
        raise FileNotFoundError(f"no cache made by encoder {spec!r} in {folder}; run `extract --encoder {spec}` "
                                "or give the cache file path")
    if len(found) > 1:
        raise ValueError(f"{len(found)} caches made by {spec!r} in {folder}: "
                         f"{[f.name for f in found]}; give the file path instead")
    return found[0]


def parse_feature_specs(specs: list[str], cache_dir: str | Path = "caches") -> dict[str, Path]:
    """['image=<cache or encoder>', 'text=...'] -> {'image': Path, 'text': Path}."""
    out: dict[str, Path] = {}
    for s in specs:
        if "=" not in s:
            raise ValueError(f"--features expects name=<cache file or encoder>, got {s!r}")
        name, ref = s.split("=", 1)
        if not name or "." in name:
            raise ValueError(f"--features name {name!r} must be non-empty and contain no '.'")
        if name in out:
            raise ValueError(f"--features gives modality {name!r} twice")
        path = resolve_cache(ref, cache_dir)
        for other, q in out.items():
            # Two names for one cache is always a mistake in a fusion head (the same features
            # twice); compared after resolving, so ./x.h5, an absolute path or a symlink match.
            if _same_file(path, q):
                raise ValueError(f"--features {other}= and {name}= are the same cache {path.resolve()}; "
                                 "give each name a different cache (a cache per modality/encoder)")
        out[name] = path
    if not out:
        raise ValueError("give at least one --features name=<cache>")
    return out


def _same_file(a: Path, b: Path) -> bool:
    """Same file by resolved path, or (both existing) by device and inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.samefile(b)
    except OSError:
        return False


def load_features(caches: dict[str, str | Path], tokens: bool = False) -> FeatureSet:
    """Load and join caches; refuses caches that disagree on ids, labels or splits.

    Every dataset read is checked against its checksum and for structure (unique ids, NaN
    exactly in the rows marked missing...) by cache.read.check_arrays, the code behind
    `cache verify`, so an altered cache is refused here with the line verify prints. The
    bytes are hashed as they sit in memory: no second read of the file."""
    ref: dict[str, Any] | None = None
    X, present, toks, tmask, sources, aux, label_extras = {}, {}, {}, {}, {}, {}, {}
    for m, path in sorted(caches.items()):
        info = open_info(path)
        names = ["ids", "split", "labels", "features", "present"]
        use_tokens = tokens and "tokens" in info.datasets
        extras = [k for k in info.datasets if k.startswith(("aux.", "label_extras."))]
        arrays = read_arrays(info, names + (["tokens", "token_mask"] if use_tokens else []) + extras)
        check_arrays(info, arrays)
        ids, split, labels = arrays["ids"], arrays["split"], arrays["labels"]
        feats = arrays.pop("features").astype(np.float32)
        pres = arrays["present"].astype(bool)
        tok = arrays.pop("tokens").astype(np.float32) if use_tokens else None
        tmk = arrays["token_mask"].astype(bool) if use_tokens else None
        names = info.label_names
        if ref is None:
            ref = {"m": m, "path": info.path, "ids": ids, "split": split, "labels": labels, "names": names}
            order = np.arange(len(ids))
        else:
            order = _align(ref, m, info.path, ids, split, labels, names)
        feats = feats[order]
        pres = pres[order]
        feats[~pres] = 0.0  # NaN rows of missing items become zeros; the mask travels with them
        X[m], present[m] = torch.from_numpy(feats), torch.from_numpy(pres)
        if tok is not None:
            toks[m], tmask[m] = torch.from_numpy(tok[order]), torch.from_numpy(tmk[order])
        cols = [names.index(n) for n in ref["names"]]  # label rows matched by name
        aux[m] = {k[4:]: torch.from_numpy(np.nan_to_num(arrays[k][order].astype(np.float32)))
                  for k in extras if k.startswith("aux.")}
        label_extras[m] = {k[13:]: arrays[k][cols].astype(np.float32) for k in extras if k.startswith("label_extras.")}
        # Absolute, so a run folder's recorded caches resolve from any working directory.
        sources[m] = {"path": str(info.path.resolve()), "settings_hash": info.attrs.get("settings_hash"),
                      "checksum": info.attrs.get("checksum"), "encoder": info.attrs.get("encoder"),
                      "weights": info.attrs.get("weights"), "modality": info.attrs.get("modality"),
                      "dataset": info.attrs.get("dataset"),
                      "dataset_fingerprint": info.attrs.get("dataset_fingerprint"),
                      "has_tokens": info.token_shape is not None, "tokens_used": tok is not None}
    assert ref is not None
    Y = torch.from_numpy(ref["labels"].astype(np.float32))
    return FeatureSet(ref["ids"], ref["split"], ref["names"], Y, X, present, toks, tmask, sources,
                      {m: a for m, a in aux.items() if a}, {m: e for m, e in label_extras.items() if e})


def _align(ref: dict[str, Any], m: str, path: Path, ids: np.ndarray, split: np.ndarray,
           labels: np.ndarray, names: list[str]) -> np.ndarray:
    """Row order that maps this cache onto the reference cache's ids; checks agreement."""
    what = f"caches {ref['path'].name} ({ref['m']}) and {path.name} ({m})"
    if set(names) != set(ref["names"]):
        raise CacheError(f"{what} have different label sets "
                         f"(only in one: {sorted(set(names) ^ set(ref['names']))}); extract both from the same data set")
    if len(ids) != len(ref["ids"]) or set(ids) != set(ref["ids"]):
        diff = len(set(ids) ^ set(ref["ids"]))
        raise CacheError(f"{what} do not share ids ({diff} ids in only one); "
                         "extract both from the same data set with the same --limit")
    pos = {i: k for k, i in enumerate(ids)}
    order = np.array([pos[i] for i in ref["ids"]])
    col = [names.index(n) for n in ref["names"]]  # labels matched by name, not column index
    if not np.array_equal(split[order], ref["split"]):
        raise CacheError(f"{what} disagree on the split of {int((split[order] != ref['split']).sum())} ids")
    if not np.array_equal(labels[order][:, col], ref["labels"]):
        raise CacheError(f"{what} disagree on the labels of some ids; extract both from the same data set")
    return order
