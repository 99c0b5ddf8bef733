"""Predict genres for new posters/plots with a trained head and the encoders its caches name.

The run's head.pt records, per modality, the cache it was trained on; each cache records
its encoder, weights (name or file hash), options and fine-tuned state dict. Prediction
rebuilds exactly those encoders and refuses to go on when the weights it finds are not
the ones the cache was made with, when a cache fails its checksum (`cache.read.verify`),
or when head.pt is not a readable head checkpoint.

An input item is checked before anything is encoded (`Predictor.load`): a poster that is
missing, unreadable or too large, or an item that gives the head nothing it reads (no
poster for an image-only head, empty text...), raises `BadItem` with one line saying why,
so a batch can report and skip that item instead of ending. A plot whose text features come
out exactly zero (no word of it in a TF-IDF vocabulary) is masked like an absent one, with
the reason, rather than fed as a zero vector that every such plot shares (`Predictor.encode`).
"""
from __future__ import annotations

import contextlib
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from cache.read import CacheInfo, verify
from extract.encoders import ENCODERS, Encoder, create_encoder
from extract.images import FILE_MISSING, OK, load_image
from extract.records import is_blank
from train_heads.calibration import apply_temperature
from train_heads.fusion import create_fusion

# What a user calls each encoder kind when told what to give.
KIND_INPUT = {"image": "poster", "text": "plot text"}
# head.pt keys predict needs; a file without them is not a head checkpoint.
CHECKPOINT_KEYS = ("state_dict", "fusion", "dims", "label_names", "thresholds", "sources")


class BadItem(ValueError):
    """An input item the head cannot use (bad poster, nothing it reads); the message says why."""


@dataclass
class Item:
    id: str
    image: Path | None = None
    text: str | None = None


@dataclass
class Loaded:
    """One checked item: the raw input per modality the head reads (None = masked)."""
    item: Item
    raw: dict[str, Any]
    masked: dict[str, str] = field(default_factory=dict)  # modality the head reads -> why this item lacks it


@dataclass
class Encoded:
    """A chunk of checked items made into the head's input (`Predictor.encode`)."""
    loaded: list[Loaded]  # the items the head can read, in input order; one row of feats each
    refused: list[tuple[Loaded, BadItem]]  # items that, once encoded, gave the head nothing
    feats: dict[str, torch.Tensor]  # the head's input batch for `loaded`


@dataclass
class Predictor:
    head: torch.nn.Module
    encoders: dict[str, Encoder]  # only the modalities the head reads
    dtypes: dict[str, str]  # cache feature dtype per modality (features are rounded to it)
    use_tokens: dict[str, bool]
    label_names: list[str]
    thresholds: np.ndarray
    norm: dict[str, tuple[torch.Tensor, torch.Tensor]]  # train-split feature statistics
    # Every modality the run was trained with -> its kind ("image"/"text"); a unimodal head
    # trained next to other caches ignores those.
    kinds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # decisions made while loading, for the CLI to print
    temperature: float | None = None  # --calibrate temperature: the T fitted on dev, from head.pt
    # Modalities predict has no input for (metadata; a text field joined from a side file, such
    # as poster_text or meta_plot: --text is a plot) -> why; they are masked on every item, as a
    # missing poster is, and the CLI prints it once
    unfed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu") -> "Predictor":
        run = Path(run)
        ck = load_checkpoint(run)
        try:
            head = create_fusion(ck["fusion"], ck["dims"], len(ck["label_names"]),
                                 token_dims=ck.get("token_dims") or None, **(ck.get("fusion_kw") or {}))
            head.load_state_dict(ck["state_dict"])
        except (RuntimeError, TypeError, ValueError, KeyError) as e:
            raise ValueError(_damaged(run / "head.pt", e)) from None
        head.eval()
        kinds = {m: str(src.get("modality") or m) for m, src in ck["sources"].items()}
        if len(np.atleast_1d(ck["thresholds"])) != len(ck["label_names"]):
            raise ValueError(_damaged(run / "head.pt", ValueError("thresholds do not match the genres")))
        encoders, dtypes, use_tokens, notes, unfed = {}, {}, {}, [], {}
        for m in head_reads(head):
            src = ck["sources"][m]
            info, note = resolve_cache(src, m, run)
            notes += [note] if note else []
            encoders[m] = _rebuild_encoder(info.path, info.attrs, torch.device(device))
            kinds[m] = encoders[m].modality
            dtypes[m] = info.dtype
            use_tokens[m] = bool(src.get("tokens_used"))
            why = _unfed(kinds[m], info.attrs)
            if why:
                unfed[m] = why
                notes.append(f"{m} is masked on every item: {why}")
        return cls(head, encoders, dtypes, use_tokens, list(ck["label_names"]),
                   np.asarray(ck["thresholds"], dtype=np.float64), ck.get("norm") or {}, kinds, notes,
                   ck.get("temperature"), unfed)

    # ---- what the head reads ------------------------------------------------------------
    @property
    def reads(self) -> list[str]:
        """Modality names the head uses, in its order."""
        return list(self.encoders)

    def describe_reads(self) -> str:
        """e.g. 'image (poster) and text (plot text)'."""
        return " and ".join(f"{m} ({KIND_INPUT.get(self.kinds[m], self.kinds[m])})" for m in self.reads)

    def ignored(self, item: Item) -> list[str]:
        """Input kinds the item gives that no modality of the head reads (e.g. text for an image head)."""
        read_kinds = {self.kinds[m] for m in self.reads}
        given = [k for k, v in (("image", item.image), ("text", item.text)) if v is not None]
        return [k for k in given if k not in read_kinds]

    # ---- checking and predicting ----------------------------------------------------------
    def load(self, item: Item) -> Loaded:
        """Decode and check one item; raises BadItem (one line) when the head cannot use it."""
        raw: dict[str, Any] = {}
        why: dict[str, str] = {}
        for m in self.reads:
            kind = self.kinds[m]
            if m in self.unfed:
                raw[m], why[m] = None, self.unfed[m]
            elif kind == "text":
                if item.text is None:
                    raw[m], why[m] = None, "no text given"
                elif is_blank(item.text):  # the rule extract uses for empty_text
                    raw[m], why[m] = None, "the text is empty (only whitespace or invisible characters)"
                else:
                    raw[m] = item.text
            elif kind == "image":
                if item.image is None:
                    raw[m], why[m] = None, "no poster given"
                    continue
                status, im, reason = load_image(item.image)
                if status == FILE_MISSING:
                    raise BadItem(f"poster {item.image} does not exist")
                if status != OK:
                    raise BadItem(f"poster {reason}")
                raw[m] = im
            else:
                raise ValueError(f"modality {m!r} has encoder kind {kind!r}, which predict cannot feed")
        if all(raw[m] is None for m in self.reads):
            raise self._nothing_to_read(item, why)
        return Loaded(item, raw, why)

    def _nothing_to_read(self, item: Item, why: dict[str, str]) -> BadItem:
        """The one line for an item none of whose inputs the head can use."""
        ignored = self.ignored(item)
        extra = f"; {' and '.join(ignored)} given, which this head does not read" if ignored else ""
        return BadItem(f"nothing for the head to read: it reads {self.describe_reads()}, and "
                       f"{'; '.join(dict.fromkeys(why.values()))}{extra}")

    @torch.no_grad()
    def predict(self, items: list[Item]) -> np.ndarray:
        """(N, C) probabilities; raises BadItem on the first item the head cannot use."""
        return self.predict_loaded([self.load(it) for it in items])

    @torch.no_grad()
    def predict_loaded(self, loaded: list[Loaded]) -> np.ndarray:
        """(N, C) probabilities for checked items; raises BadItem on the first item that
        turns out, once encoded, to give the head nothing (see `encode`)."""
        enc = self.encode(loaded)
        if enc.refused:
            raise enc.refused[0][1]
        return self.predict_encoded(enc)

    @torch.no_grad()
    def predict_encoded(self, enc: Encoded) -> np.ndarray:
        """(len(enc.loaded), C) probabilities, temperature-scaled when the run was calibrated
        (the thresholds were tuned on the scaled probabilities)."""
        probs = torch.sigmoid(self.head(enc.feats)).numpy()
        return probs if self.temperature is None else apply_temperature(probs, self.temperature)

    @torch.no_grad()
    def encode(self, loaded: list[Loaded]) -> Encoded:
        """The head's input for checked items. A modality an item lacks is masked like a
        missing poster in the cache (the head was trained with such rows). A text whose
        feature row is exactly zero (e.g. no word of it in a TF-IDF vocabulary) carries
        nothing either, and every such text would give the same output: it is masked too,
        with the reason in `Loaded.masked`; an item left with nothing is refused."""
        feats: dict[str, torch.Tensor] = {}
        n = len(loaded)
        for m, enc in self.encoders.items():
            ok = torch.tensor([ld.raw[m] is not None for ld in loaded], dtype=torch.bool)
            x = torch.zeros(n, enc.dim)
            if ok.any():
                with torch.inference_mode():
                    out = enc.encode(enc.collate([enc.preprocess(ld.raw[m]) for ld in loaded
                                                  if ld.raw[m] is not None]), tokens=self.use_tokens[m])
                # Round to the cache dtype: the head was trained on those values.
                x[ok] = out.features.float().cpu().to(getattr(torch, self.dtypes[m])).float()
                if self.use_tokens[m]:
                    tok = torch.zeros(n, *out.tokens.shape[1:])
                    mask = torch.zeros(n, out.tokens.shape[1], dtype=torch.bool)
                    tok[ok], mask[ok] = out.tokens.float().cpu(), out.token_mask.cpu()
                    feats[f"{m}.tokens"], feats[f"{m}.token_mask"] = tok, mask
                empty = torch.zeros(n, dtype=torch.bool)
                empty[ok] = enc.empty_rows(x[ok])  # on the rounded values the cache would hold
                self._mask_empty(m, enc.name, loaded, ok, empty, feats)
            feats[m], feats[f"{m}.present"] = x, ok
        usable = torch.stack([feats[f"{m}.present"] for m in self.reads]).any(dim=0).tolist()
        keep = [i for i in range(n) if usable[i]]
        refused = [(ld, self._nothing_to_read(ld.item, ld.masked)) for ld, u in zip(loaded, usable) if not u]
        idx = torch.tensor(keep, dtype=torch.long)
        feats = {k: v[idx] for k, v in feats.items()}
        for m, (mean, std) in self.norm.items():  # the head saw z-scored features
            if m in self.encoders:
                ok = feats[f"{m}.present"]
                feats[m][ok] = (feats[m][ok] - mean) / std
        return Encoded([loaded[i] for i in keep], refused, feats)

    @staticmethod
    def _mask_empty(m: str, encoder: str, loaded: list[Loaded], ok: torch.Tensor, zero: torch.Tensor,
                    feats: dict[str, torch.Tensor]) -> None:
        """Mask modality m (in place) for items whose encoded row carries nothing
        (Encoder.empty_rows, checked before standardization, which would make it non-zero)."""
        for i in zero.nonzero().flatten().tolist():
            loaded[i].raw[m] = None
            loaded[i].masked[m] = (f"no word of the plot is in the {encoder} vocabulary: "
                                   "its features are all zero")
        ok &= ~zero
        if f"{m}.tokens" in feats:
            feats[f"{m}.tokens"][zero] = 0
            feats[f"{m}.token_mask"][zero] = False

    def chosen(self, probs: np.ndarray) -> list[str]:
        """Genres at or above their tuned threshold for one item's (C,) probabilities."""
        return [n for n, p, t in zip(self.label_names, probs, self.thresholds) if p >= t]


def _unfed(kind: str, attrs: dict[str, Any]) -> str | None:
    """Why predict cannot feed a modality (see Predictor.unfed), or None."""
    if kind == "meta":
        return "predict takes a poster and a plot text, no metadata"
    settings = (attrs.get("config") or {}).get("settings") or {}
    if kind == "text" and "side_fingerprint" in settings:
        return (f"its text field {attrs.get('text_field')!r} came from a side file (--meta-file/--text-file); "
                "--text is a plot")
    return None


def head_reads(head: torch.nn.Module) -> list[str]:
    """Modalities a head uses: unimodal heads pick one (`modality`), the others read all."""
    one = getattr(head, "modality", None)
    return [one] if isinstance(one, str) else list(getattr(head, "modalities"))


# ---------------------------------------------------------------------------------------
# head.pt
# ---------------------------------------------------------------------------------------
def _safe_globals() -> list[Any]:
    """The non-tensor objects a head.pt holds (the thresholds are a numpy array), allowed
    for torch.load(weights_only=True), which refuses everything else: a head.pt from
    someone else cannot run code when it is opened."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    return [core.multiarray._reconstruct, np.ndarray, np.dtype,
            *(type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_))]


def _damaged(path: Path, e: BaseException, why: str | None = None) -> str:
    return (f"{path} is damaged or not a head checkpoint ({why or type(e).__name__}); "
            "retrain with train-head")


def load_checkpoint(run: Path) -> dict[str, Any]:
    """head.pt as a dict, or one line: missing, truncated, garbage or of another shape."""
    path = run / "head.pt"
    if not path.is_file():
        from train_heads.ensemble import ensemble_members

        members = ensemble_members(run)
        if members is not None:
            raise ValueError(f"{run} is an ensemble run (averaged probabilities of {', '.join(members)}), "
                             "not one head; predict with each member")
        raise FileNotFoundError(f"{run} has no head.pt; give a run folder written by train-head")
    # torch < 2.5 has no safe_globals context and cannot load numpy arrays with
    # weights_only=True; there the checkpoint is unpickled as train-head wrote it.
    safe = hasattr(torch.serialization, "safe_globals")
    try:
        with torch.serialization.safe_globals(_safe_globals()) if safe else contextlib.nullcontext():
            ck = torch.load(path, map_location="cpu", weights_only=safe)
    except OSError:
        raise  # unreadable file: the CLI names the path and the cause
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            TypeError, KeyError, AttributeError, IndexError, UnicodeDecodeError) as e:
        # torch raises RuntimeError for a truncated zip, UnpicklingError for garbage or a
        # disallowed object, EOFError/BadZipFile for other cuts.
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if unsafe:
            raise ValueError(_damaged(path, e, f"it holds {unsafe.group(1)}, which a head checkpoint does "
                                               "not; not unpickled, as that could run code")) from None
        raise ValueError(_damaged(path, e)) from None
    if not isinstance(ck, dict) or any(k not in ck for k in CHECKPOINT_KEYS):
        raise ValueError(_damaged(path, KeyError("missing keys")))
    return ck


# ---------------------------------------------------------------------------------------
# caches
# ---------------------------------------------------------------------------------------
def cache_candidates(recorded: str | Path, run: Path) -> list[Path]:
    """Where a cache path recorded in a run may be now. Absolute: only itself. Relative (runs
    made before paths were stored absolute; relative to the folder train-head ran in): as
    given (from here), then from the run folder and each folder above it, nearest first."""
    p = Path(recorded)
    if p.is_absolute():
        return [p]
    run = run.resolve()
    return [p, run / p, *(a / p for a in run.parents)]


def resolve_cache(src: dict[str, Any], modality: str, run: Path) -> tuple[CacheInfo, str | None]:
    """The cache a run's head was trained on, found and fully checked (checksum included),
    and a note when it was found somewhere other than the recorded path."""
    recorded = str(src.get("path", ""))
    found = next((c for c in cache_candidates(recorded, run) if c.is_file()), None)
    if found is None:
        partial = next((c for c in cache_candidates(recorded, run)
                        if c.with_name(c.name + ".partial").exists()), None)
        if partial is not None:
            verify(partial)  # says it is unfinished and what to run
        raise FileNotFoundError(
            f"the {modality} cache recorded in {run / 'head.pt'} ({recorded}) is not there, nor relative "
            f"to {run}; put the cache back at that path, or rerun the extract and train-head commands")
    info = verify(found)
    want, got = src.get("settings_hash"), info.attrs.get("settings_hash")
    if want and got and want != got:
        raise ValueError(f"{found} is not the {modality} cache this head was trained on (settings hash "
                         f"{got}, the run recorded {want}); give the run its own cache back")
    # Never a silent decision: say which file stands in for the recorded path.
    return info, (f"{modality} cache {recorded} found as {found}" if found != Path(recorded) else None)


def _rebuild_encoder(path: Path, attrs: dict[str, Any], device: torch.device) -> Encoder:
    cfg = attrs["config"]
    options = dict(attrs.get("options") or {})
    if "resize" in ENCODERS[attrs["encoder"]].defaults:
        options.setdefault("resize", "crop")  # caches made before -o resize existed were centre-cropped
    enc = create_encoder(attrs["encoder"], weights=cfg.get("weights"), options=options,
                         state_dict=cfg.get("state_dict"))
    if enc.needs_fit:
        with h5py.File(path, "r") as f:
            if "extra_state" not in f:
                raise ValueError(f"{path} has no fitted state for encoder {attrs['encoder']!r}; re-extract it")
            enc.load_extra_state(f["extra_state"][...].tobytes())
    try:
        enc.build(device)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load encoder {attrs['encoder']!r} with weights {attrs['weights']!r} "
                         f"recorded in {path.name}: {e}") from None
    if enc.weights_tag() != attrs["weights"]:
        raise ValueError(f"encoder {attrs['encoder']!r}: cache {path.name} was made with weights "
                         f"{attrs['weights']!r} but {enc.weights_tag()!r} is what loads here")
    return enc
