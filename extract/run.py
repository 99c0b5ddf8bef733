"""Batched, resumable extraction of one encoder over one modality of a data set.

DataLoader workers read and preprocess (decode + resize posters, tokenize plots) while
the main process runs the model under `torch.inference_mode` (AMP on CUDA). Batches sit
on fixed boundaries (batch b = rows [b*bs, (b+1)*bs)), so a resumed run recomputes
exactly the batches an uninterrupted run would have, and ends bit-identical to it.
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from cache.store import cache_filename, check_out_folder, settings_hash
from cache.shards import ShardWriter, clean_finished
from extract.datasets import DatasetConfig, load_dataset
from extract.device import pick_device
from extract.encoders import ENCODERS, EncodeOutput, Encoder, create_encoder
from extract.encoders.scratch import check_extractable
from extract.encoders.trunk import Trunk, parse_blocks
from extract.images import CORRUPT, FILE_MISSING, OK, load_image
from extract.procs import DieWithParent
from extract.readers.side import entity_list
from extract.records import Dataset, Record, is_blank

# Why a row has no features (stored per row in the shards, summed into the attrs).
EMPTY_TEXT, NO_IMAGE, NO_WORD, NO_META = 3, 4, 5, 6  # after the poster loader's OK, FILE_MISSING, CORRUPT
REASONS = {FILE_MISSING: "image_file_missing", CORRUPT: "image_corrupt",
           EMPTY_TEXT: "empty_text", NO_IMAGE: "no_image_in_dataset",
           # a text whose features are all zero: no word of it is in a (TF-IDF) vocabulary; every
           # such text would share one vector, so it is masked like an empty text (predict does the same)
           NO_WORD: "text_no_vocabulary_word",
           # no entity in the encoder's metadata fields (a movie without director, cast...)
           NO_META: "no_metadata"}
DTYPES = ("float16", "float32")
MODALITIES = ("image", "text", "meta")


@dataclass
class ExtractConfig:
    dataset: DatasetConfig
    encoder: str  # registry name; "clip" + --modality resolves to clip-image / clip-text
    modality: str | None = None  # "image", "text" or "meta"; None = the encoder's own modality
    weights: str | None = None  # hub name / tag / local file; None = the encoder's default
    options: dict[str, Any] = field(default_factory=dict)  # encoder-specific (pooling, max_length...)
    state_dict: Path | None = None  # fine-tuned weights loaded over the model (end-to-end mode)
    text_field: str = "plot"  # which named text of the records a text encoder reads
    out: Path = Path("caches")
    batch_size: int = 64
    # Decoding workers; 2 keeps both cores of a small machine busy next to the model.
    workers: int = 2
    device: str = "auto"  # auto = cuda if available, else cpu
    dtype: str = "float16"  # half the disk and RAM; heads train in float32 anyway
    tokens: bool = False  # also store token/patch states for attention heads
    # last:N = store the activations ENTERING the first of the encoder's last N blocks (the
    # frozen prefix of a partial fine-tuning run, finetune/) as tokens, float32; None: off
    upto: str | None = None
    command: str = ""  # the command line, recorded in the cache

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.modality not in (None, *MODALITIES):
            raise ValueError(f"--modality must be one of {list(MODALITIES)}, got {self.modality!r}")
        check_out_folder(self.out)  # a file or an unwritable folder: refused before the data is read
        self.encoder = resolve_encoder_name(self.encoder, self.modality)
        self.modality = ENCODERS[self.encoder].modality
        check_extractable(ENCODERS[self.encoder], self.state_dict)
        if self.upto is not None:
            if self.tokens:
                raise ValueError("--upto stores the activations entering a block as the cache's tokens; drop --tokens")
            if self.upto in ("none", "all") or not self.upto.startswith("last:"):
                raise ValueError(f"--upto {self.upto!r}: give last:N, the blocks a fine-tuning run trains "
                                 "(none: nothing to cache, the pooled features are a plain cache; all: nothing is frozen)")
            self.dtype = "float32"  # activations a fine-tuning run continues from: exact, not float16
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"--device {self.device!r} is not a torch device (cpu, cuda, cuda:1...)") from None


def resolve_encoder_name(name: str, modality: str | None) -> str:
    """'clip' + 'image' -> 'clip-image'; checks the name against the registry."""
    from extract.encoders import list_encoders

    names = list_encoders()
    if name in names:
        if modality and ENCODERS[name].modality != modality:
            raise ValueError(f"encoder {name!r} is a {ENCODERS[name].modality} encoder, "
                             f"not {modality}; drop --modality or pick another encoder")
        return name
    families = sorted({n.rsplit("-", 1)[0] for n in names if n.endswith(("-image", "-text"))})
    if name in families:
        if modality is None:
            raise ValueError(f"encoder {name!r} has image and text towers; add --modality image|text")
        return f"{name}-{modality}"
    raise ValueError(f"Unknown encoder {name!r}; choose from {sorted(set(names) | set(families))}")


@dataclass
class ExtractResult:
    path: Path
    skipped: bool  # True: the cache already existed (same settings), nothing was done
    n: int
    dim: int
    missing: dict[str, int]
    seconds: float
    no_train_positive: list[str] = field(default_factory=list)  # label names never positive in train
    report: dict[str, Any] = field(default_factory=dict)  # the reader's report (split counts, notes...)


# ---------------------------------------------------------------------------------------
# Worker side: read one row, preprocess it
# ---------------------------------------------------------------------------------------
class _Rows(torch.utils.data.Dataset):
    def __init__(self, records: list[Record], modality: str, text_field: str, encoder: Encoder) -> None:
        self.records, self.modality, self.text_field, self.encoder = records, modality, text_field, encoder

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, int, Any]:
        r = self.records[i]
        if self.modality == "meta":
            row = meta_row(r, self.encoder.meta_fields)
            if not any(row.values()):  # no director, cast, ...: masked like a missing poster
                return i, NO_META, None
            return i, OK, self.encoder.preprocess(row)
        if self.modality == "text":
            text = r.texts.get(self.text_field, "")
            if is_blank(text):  # zero-width spaces, BOMs, soft hyphens... count as empty
                return i, EMPTY_TEXT, None
            return i, OK, self.encoder.preprocess(text)
        if r.image is None:
            return i, NO_IMAGE, None
        # Full decode, EXIF orientation, decompression-bomb guard; its statuses are ours.
        status, im, _ = load_image(r.image)
        if status != OK:
            return i, status, None
        return i, OK, self.encoder.preprocess(im)


class _Collate:
    """Keeps the row order; hands only rows with content to the encoder's collate."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, items: list[tuple[int, int, Any]]) -> tuple[np.ndarray, np.ndarray, Any]:
        idx = np.array([i for i, _, _ in items], dtype=np.int64)
        status = np.array([s for _, s, _ in items], dtype=np.int8)
        xs = [x for _, s, x in items if s == OK]
        return idx, status, (self.encoder.collate(xs) if xs else None)


# ---------------------------------------------------------------------------------------
# Main side
# ---------------------------------------------------------------------------------------
def meta_row(r: Record, fields: list[str]) -> dict[str, list[str]]:
    """A record's metadata fields as entity lists (a field it lacks is empty)."""
    return {f: entity_list(r.meta.get(f), f"record {r.id} metadata field {f}") for f in fields}


def cache_settings(cfg: ExtractConfig, enc: Encoder, ds: Dataset, precision: str) -> dict[str, Any]:
    """Everything that changes the numbers (hashed into the file name)."""
    out = {"encoder": enc.describe(), "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(),
           "text_field": cfg.text_field if cfg.modality == "text" else None,
           "dtype": cfg.dtype, "tokens": cfg.tokens, "precision": precision}
    if cfg.upto is not None:  # only when set: caches made before --upto keep their names
        out["upto"] = cfg.upto
    # Side inputs (--meta-file fields and text columns, --text-file texts) by content; only for
    # the caches that read them, so the image and plot caches keep their names.
    if cfg.modality == "meta":
        out["side_fingerprint"] = ds.side_fingerprint(meta_fields=enc.meta_fields)
    elif cfg.modality == "text" and cfg.text_field in ds.side_texts:
        out["side_fingerprint"] = ds.side_fingerprint(text_field=cfg.text_field)
    return out


def _check_meta_fields(enc: Encoder, ds: Dataset) -> None:
    """A metadata encoder's fields must exist in the data: none at all is refused (every row
    would be masked); fields in no record are said (a typo, or a data set without them)."""
    have = sorted({k for r in ds.records for k in r.meta} | set(ds.meta_fields))
    if not have:
        raise ValueError(f"encoder {enc.name!r} reads metadata, and this data set has none; give --meta-file "
                         "(or a reader whose records carry metadata)")
    absent = [f for f in enc.meta_fields if f not in have]
    if len(absent) == len(enc.meta_fields):
        raise ValueError(f"encoder {enc.name!r}: metadata field(s) {absent} (-o fields=...) are in no record; "
                         f"this data set has {have}")
    if absent:
        _notice(f"metadata field(s) {absent} are in no record (this data set has {have}); "
                f"{enc.name} reads {[f for f in enc.meta_fields if f in have]}")


def run_extract(cfg: ExtractConfig, dataset: Dataset | None = None, progress: bool = True) -> ExtractResult:
    """Extract (or resume, or skip when already done) one cache; returns where it is."""
    t0 = time.perf_counter()
    ds = dataset if dataset is not None else load_dataset(cfg.dataset)
    if not ds.records:
        raise ValueError(f"data set {ds.name!r} has no records; check --data and the reader flags")
    device = pick_device(cfg.device)
    # --upto: fp32 even on CUDA, so the stored prefix is what a fine-tuning run's frozen part computes
    precision = "amp-fp16" if device.type == "cuda" and cfg.upto is None else "fp32"
    enc = create_encoder(cfg.encoder, weights=cfg.weights, options=cfg.options, state_dict=cfg.state_dict)
    if cfg.modality == "text" and not any(cfg.text_field in r.texts for r in ds.records):
        raise ValueError(f"--text-field {cfg.text_field!r} is in no record; this data set has "
                         f"{sorted({k for r in ds.records for k in r.texts})}")
    if cfg.modality == "meta":
        _check_meta_fields(enc, ds)
    settings = cache_settings(cfg, enc, ds, precision)
    key = settings_hash(settings)
    final = Path(cfg.out) / cache_filename(ds.name, cfg.modality, cfg.encoder, key)
    if final.exists():
        from cache.read import open_info

        info = open_info(final)  # refuses a damaged file instead of skipping over it
        removed = clean_finished(final)
        if removed:
            _notice(f"removed {len(removed)} leftover(s) of an earlier killed run: "
                    + ", ".join(p.name for p in removed))
        missing = {k: v for k, v in info.attrs.get("missing", {}).items() if k != "ids_first_1000"}
        return ExtractResult(final, True, info.n, info.dim, missing, 0.0,
                             ds.labels_without_train_positive(), ds.report)
    final.parent.mkdir(parents=True, exist_ok=True)

    n = len(ds.records)
    prefix = None
    if cfg.upto is not None:  # no trunk, or N too large: refused before any file is written
        _fit_and_build(cfg, enc, ds, device)
        prefix = _prefix(cfg, enc)
    meta = {"key": key, "n": n, "batch_size": cfg.batch_size, "settings": settings}
    with ShardWriter(final, meta) as writer:
        if writer.removed:
            _notice(f"removed {len(writer.removed)} temp file(s) of an earlier killed run: "
                    + ", ".join(p.name for p in writer.removed))
        bs = writer.batch_size
        n_batches = (n + bs - 1) // bs
        if prefix is None:
            _fit_and_build(cfg, enc, ds, device)
        expected = {"status": ((), "i"), "present": ((), "b"),
                    "features": ((enc.dim,) if prefix is None else None, "f")}
        if cfg.tokens or prefix is not None:
            expected |= {"tokens": (None, "f"), "token_mask": (None, "b")}
        damaged = writer.discard_damaged(expected)  # a resumed run checks what it builds on
        if damaged:
            _notice(f"discarded {len(damaged)} damaged batch file(s) in {writer.dir} "
                    f"({', '.join(p.name for p in damaged[:3])}{' ...' if len(damaged) > 3 else ''}); recomputing")
        todo = sorted(set(range(n_batches)) - writer.done_batches())
        if todo:
            _run_batches(cfg, enc, ds, writer, todo, n, device, progress, prefix)
        header = {"ids": np.array([r.id for r in ds.records], dtype=object),
                  "split": np.array([r.split for r in ds.records], dtype=object),
                  "labels": np.array(ds.label_matrix(), dtype=np.uint8).reshape(n, len(ds.label_names))}
        header |= {f"label_extras.{k}": v for k, v in enc.label_extras(ds.label_names).items()}
        status = np.concatenate([writer.read_batch(b)["status"] for b in range(n_batches)])
        missing = {REASONS[c]: int((status == c).sum()) for c in REASONS if (status == c).any()}
        seconds = time.perf_counter() - t0
        attrs = cache_attrs(cfg, enc, ds, settings, key, missing, status, seconds, resumed=len(todo) < n_batches)
        dim = enc.dim
        if prefix is not None:
            attrs.update(upto=cfg.upto, upto_block=prefix[1], n_blocks=prefix[0].n_blocks)
            dim = int(writer.read_batch(0)["features"].shape[1])  # the width of the state entering block k
        writer.finish(n_batches, header, attrs, cfg.dtype, enc.extra_state())
    return ExtractResult(final, False, n, dim, missing, seconds, ds.labels_without_train_positive(),
                         ds.report)


def _fit_and_build(cfg: ExtractConfig, enc: Encoder, ds: Dataset, device: torch.device) -> None:
    if enc.needs_fit and cfg.modality == "meta":
        # every record's metadata (no labels in it), labels of TRAIN records only: a dev or test
        # movie's genres can never reach a vocabulary or a graph
        enc.fit_meta([meta_row(r, enc.meta_fields) for r in ds.records],
                     [list(r.labels) if r.split == "train" else None for r in ds.records])
    elif enc.needs_fit:
        enc.fit([r.texts.get(cfg.text_field, "") for r in ds.records if r.split == "train"])
    enc.build(device)


def _prefix(cfg: ExtractConfig, enc: Encoder) -> tuple[Trunk, int] | None:
    """(trunk, k) for --upto last:N: the batches store the state entering block k; else None."""
    if cfg.upto is None:
        return None
    trunk = enc.trunk()  # the unfolded model: what a fine-tuning run's frozen part computes
    return trunk, parse_blocks(cfg.upto, trunk.n_blocks, "--upto")


def _notice(msg: str) -> None:
    """A decision the run took on its own (cleanup, recomputation): always said, on stdout."""
    print(msg, flush=True)


def _run_batches(cfg: ExtractConfig, enc: Encoder, ds: Dataset, writer: ShardWriter,
                 todo: list[int], n: int, device: torch.device, progress: bool,
                 prefix: tuple[Trunk, int] | None = None) -> None:
    bs = writer.batch_size
    batches = [list(range(b * bs, min(n, (b + 1) * bs))) for b in todo]
    loader = DataLoader(_Rows(ds.records, cfg.modality, cfg.text_field, enc), batch_sampler=batches,
                        collate_fn=_Collate(enc), num_workers=cfg.workers,
                        # a SIGKILLed extract's workers exit at once (torch's own watchdog takes ~5 s)
                        worker_init_fn=DieWithParent(os.getpid()) if cfg.workers > 0 else None,
                        pin_memory=device.type == "cuda",
                        prefetch_factor=4 if cfg.workers > 0 else None)
    unit = {"image": "img", "text": "text", "meta": "movie"}[cfg.modality]
    done_rows = n - sum(len(b) for b in batches)
    bar = tqdm(total=n, initial=done_rows, unit=unit, desc=f"extract {cfg.encoder}",
               disable=not progress, smoothing=0.1)
    amp = (torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" and prefix is None
           else contextlib.nullcontext())
    prefix_encode = _prefix_encoder(enc, prefix, device)
    try:
        with torch.inference_mode(), amp:
            for b, (idx, status, batch) in zip(todo, loader):
                arrays = _encode_batch(enc, idx, status, batch, cfg.tokens, prefix_encode)
                writer.write_batch(b, arrays)
                bar.update(len(idx))
    finally:
        bar.close()  # ends the bar's line, so an error message starts on a line of its own


def _prefix_encoder(enc: Encoder, prefix: tuple[Trunk, int] | None, device: torch.device) -> Any:
    """encode() for --upto: the state entering block k as tokens (texts padded to max_length),
    their mean over real tokens as the features."""
    if prefix is None:
        return None
    trunk, k = prefix

    def encode(batch: Any, tokens: bool = True) -> EncodeOutput:
        batch = {a: v.to(device) for a, v in batch.items()} if isinstance(batch, dict) else batch.to(device)
        tok, mask = trunk.to_tokens(trunk.prefix(batch, k))
        tok, mask = tok.float(), mask.bool()
        if not trunk.spatial and "max_length" in enc.options:  # a fixed T across batches, as --tokens
            pad = enc.options["max_length"] - tok.shape[1]
            tok, mask = F.pad(tok, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
        m = mask.unsqueeze(-1).float()
        return EncodeOutput((tok * m).sum(1).cpu() / m.sum(1).clamp(min=1.0).cpu(), tok.cpu(), mask.cpu())

    return encode


def _encode_batch(enc: Encoder, idx: np.ndarray, status: np.ndarray, batch: Any,
                  tokens: bool, prefix_encode: Any = None) -> dict[str, np.ndarray]:
    encoded = status == OK  # rows handed to the encoder
    arrays: dict[str, np.ndarray] = {}
    if prefix_encode is not None:
        tokens = True
    if batch is not None:
        out = prefix_encode(batch) if prefix_encode is not None else enc.encode(batch, tokens=tokens)
    feats = np.full((len(idx), out.features.shape[1] if batch is not None else enc.dim), np.nan,
                    dtype=np.float32)  # NaN: loud if used unmasked
    if batch is not None:
        feats[encoded] = out.features.float().cpu().numpy()
        no_word = np.zeros(len(idx), dtype=bool)
        no_word[encoded] = enc.empty_rows(out.features).cpu().numpy()  # see REASONS[NO_WORD]
        if tokens:
            if out.tokens is None:
                raise ValueError(f"encoder {enc.name!r} has no token-level output; drop --tokens")
            tok = out.tokens.float().cpu().numpy()
            full = np.zeros((len(idx), *tok.shape[1:]), dtype=np.float32)
            mask = np.zeros((len(idx), tok.shape[1]), dtype=bool)
            full[encoded], mask[encoded] = tok, out.token_mask.cpu().numpy()
            arrays["tokens"], arrays["token_mask"] = full, mask
        for k, v in (out.aux or {}).items():  # per-row extras: NaN for rows not encoded
            a = v.float().cpu().numpy()
            full_aux = np.full((len(idx), *a.shape[1:]), np.nan, dtype=np.float32)
            full_aux[encoded] = a
            full_aux[no_word] = np.nan  # a masked row carries no extras either
            arrays[f"aux.{k}"] = full_aux
        status = np.where(no_word, (NO_META if enc.modality == "meta" else NO_WORD), status).astype(status.dtype)
        feats[no_word] = np.nan
        if tokens:
            arrays["token_mask"][no_word] = False
    elif tokens:
        raise ValueError("a batch with no content cannot tell the token shape; use a larger --batch-size")
    else:  # every row of the batch is missing: its per-row extras are NaN like its features
        arrays |= {f"aux.{k}": np.full(len(idx), np.nan, dtype=np.float32) for k in enc.aux_names}
    arrays.update(status=status, present=status == OK, features=feats)
    return arrays


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "open_clip", "torchvision", "sklearn", "h5py", "numpy"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def cache_attrs(cfg: ExtractConfig, enc: Encoder, ds: Dataset, settings: dict[str, Any], key: str,
           missing: dict[str, int], status: np.ndarray, seconds: float, resumed: bool) -> dict[str, Any]:
    d = enc.describe()
    ids = [ds.records[i].id for i in np.flatnonzero(status != OK)[:1000]]
    return {
        "label_names": ds.label_names, "encoder": enc.name, "weights": d["weights"],
        "preprocess": d["preprocess"], "options": d["options"], "modality": cfg.modality,
        "text_field": cfg.text_field if cfg.modality == "text" else "",
        "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(), "settings_hash": key,
        "config": {**asdict(cfg), "settings": settings}, "report": ds.report,
        "missing": {**missing, "ids_first_1000": ids}, "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": cfg.command or " ".join(sys.argv), "seconds": round(seconds, 3),
        "resumed": resumed, "host": platform.node(), "pid": os.getpid(),
    }
