"""The encoder interface and the `ENCODERS` registry shared by every encoder family.

An encoder knows its modality, its output size and its preprocessing. Extraction
(extract/run.py) calls, in this order:

    enc = create_encoder(name, weights=..., options=..., state_dict=...)
    enc.fit(train_texts)            # only when enc.needs_fit (tfidf), text encoders
    enc.fit_meta(rows, labels)      # only when enc.needs_fit, metadata encoders (multihot, kg)
    enc.load(device)                # builds the model, loads weights and the state dict
    # in DataLoader workers (must be picklable, no CUDA):
    x = enc.preprocess(raw)         # image: PIL.Image RGB -> Tensor (3, H, W); text: str -> str;
                                    # meta: {field: [entity, ...]} -> whatever collate takes
    batch = enc.collate([x, ...])   # -> whatever encode() takes
    # in the main process:
    out = enc.encode(batch, tokens=False)  # EncodeOutput
    enc.describe()                  # JSON-able dict of everything that changes the numbers
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from extract.images import LOADING, check_resize

if TYPE_CHECKING:
    from extract.encoders.trunk import Trunk


@dataclass
class EncodeOutput:
    features: torch.Tensor  # (B, D) pooled features, float32
    tokens: torch.Tensor | None = None  # (B, T, Dt) token/patch states; T fixed per encoder config
    token_mask: torch.Tensor | None = None  # (B, T) bool, True = real token
    # Per-row extras a head may use in training (IDKG's Attention Teacher pseudo labels, eq. 6):
    # name -> (B,) or (B, k) float; stored in the cache as "aux.<name>", absent rows NaN.
    aux: dict[str, torch.Tensor] | None = None


def file_sha256(path: str | Path, length: int = 16) -> str:
    """Short content hash of a weights file, so a changed checkpoint changes the cache name."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


class Encoder:
    """Base class. Subclasses set the class attributes and implement load/preprocess/encode."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "image", "text" or "meta" (metadata fields: lists of entity names)
    # Option defaults; user options are validated against these keys.
    defaults: ClassVar[dict[str, Any]] = {}
    # Default weights: a hub name / pretrained tag / local path; "random" = random init (tests).
    default_weights: ClassVar[str] = "random"
    needs_fit: ClassVar[bool] = False  # True for encoders fitted on the train split (tfidf)
    needs_internet: ClassVar[bool] = False  # True when default weights come from a hub
    # Key prefixes of parameters the features never read (a classifier): a fine-tuned state dict
    # may change their shape or leave them out (extract/encoders/state_dict.py).
    unused_prefixes: ClassVar[tuple[str, ...]] = ()
    # True for encoders with no pretrained weights (lstm, cnn): trained only end to end by
    # `finetune`; `extract` needs their fine-tuned --state-dict.
    from_scratch: ClassVar[bool] = False
    # Names of the per-row extras encode() returns in EncodeOutput.aux (each (B,) float), so a
    # batch whose rows are all missing still stores them (as NaN)
    aux_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, weights: str | None = None, options: dict[str, Any] | None = None,
                 state_dict: str | Path | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"encoder {self.name!r} has no option(s) {unknown}; valid options: {sorted(self.defaults)}")
        self.options = {**self.defaults, **options}
        if "resize" in self.defaults:  # every image encoder: -o resize=crop|squash|pad
            self.options["resize"] = check_resize(self.name, self.options["resize"])
        self.weights = weights or self.default_weights
        self.state_dict = Path(state_dict) if state_dict else None
        if self.state_dict is not None and not self.state_dict.is_file():
            raise FileNotFoundError(f"--state-dict {self.state_dict} does not exist")
        self.device = torch.device("cpu")

    # ---- to implement -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Size D of the pooled features (known after load(), or after fit() for tfidf)."""
        raise NotImplementedError

    def load(self, device: torch.device) -> None:
        raise NotImplementedError

    def preprocess(self, raw: Any) -> Any:
        return raw

    def collate(self, items: list[Any]) -> Any:
        return torch.stack(items) if self.modality == "image" else list(items)

    def encode(self, batch: Any, tokens: bool = False) -> EncodeOutput:
        raise NotImplementedError

    def trunk(self) -> "Trunk":
        """The model cut into its natural blocks (extract/encoders/trunk.py), sharing the
        parameters of `self.model`; after load(). Encoders that cannot be fine-tuned raise."""
        raise ValueError(f"encoder {self.name!r} cannot be fine-tuned end to end (it has no block list)")

    def fit(self, texts: list[str]) -> None:
        """Fit on the train split (only encoders with needs_fit)."""

    def fit_meta(self, rows: list[dict[str, list[str]]], labels: list[list[str] | None]) -> None:
        """Fit a metadata encoder (needs_fit): `rows` holds every record's metadata in record
        order, only the fields in `meta_fields` (a missing field is an empty list); `labels`
        holds the label names of TRAIN rows and None for every other row, so dev/test labels
        can never reach a fitted vocabulary or graph."""

    @property
    def meta_fields(self) -> list[str]:
        """The metadata fields a meta encoder reads (its `fields` option)."""
        return list(self.options.get("fields", []))

    def label_extras(self, label_names: list[str]) -> dict[str, "np.ndarray"]:
        """Arrays indexed by label, (C, ...) float32 in `label_names` order, NaN rows for labels
        the encoder has nothing for (the KG's genre-entity embeddings, IDKG's G-CACL anchors);
        stored in the cache as "label_extras.<name>". Default: none."""
        return {}

    def extra_state(self) -> bytes | None:
        """Bytes saved with the cache (e.g. the fitted TF-IDF vocabulary), or None."""
        return None

    def preprocess_info(self) -> dict[str, Any]:
        """JSON-able description of the preprocessing (resize, crop, mean/std, tokenizer...)."""
        return {}

    # ---- shared -------------------------------------------------------------------------
    def build(self, device: torch.device) -> None:
        """load() under a fixed seed: 'random' weights are then identical in every process,
        so a resumed extraction or a later `predict` sees the same random model."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.load(device)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers need the preprocessing / tokenizer only, never the model.
        state = dict(self.__dict__)
        state["model"] = None
        state.pop("_net", None)
        if "_transform" in state:
            state["_transform"] = None  # rebuilt lazily in the worker
        return state

    def weights_tag(self) -> str:
        """The weights as recorded in the cache: a name/tag, or a local file plus its hash."""
        p = Path(self.weights)
        if p.is_file():
            return f"{p.name}@sha256:{file_sha256(p)}"
        return self.weights

    def describe(self) -> dict[str, Any]:
        """Everything that changes the numbers; hashed into the cache file name."""
        return {
            "encoder": self.name,
            "modality": self.modality,
            "weights": self.weights_tag(),
            "state_dict": (f"{self.state_dict.name}@sha256:{file_sha256(self.state_dict)}"
                           if self.state_dict else None),
            "options": self.options,
            "preprocess": self.full_preprocess_info(),
        }

    def empty_rows(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) bool: encoded rows that carry nothing. A text whose features are all zero had
        no word in the encoder's vocabulary (TF-IDF), metadata none of its entities in the
        train vocabulary or graph; every such row would share one vector, so extract and
        predict mask it like an empty text. An image row is never empty."""
        if self.modality == "image":
            return torch.zeros(len(features), dtype=torch.bool)
        return (features == 0).all(dim=1)

    def full_preprocess_info(self) -> dict[str, Any]:
        """preprocess_info() plus, for images, how a poster file becomes a PIL image
        (extract.images.LOADING: full decode, EXIF orientation, size guard): that changes the
        pixels too, so it is recorded in the cache and hashed into its name."""
        info = self.preprocess_info()
        if self.modality == "image":
            info = {"loading": dict(LOADING), **info}
        return info

    def _load_state_dict(self, module: torch.nn.Module) -> None:
        """Load a fine-tuned state dict (e.g. from end-to-end mode) over the built model.

        Known wrapper prefixes (`module.`, `backbone.`, `bert.`...) are mapped, a differing
        classifier under `unused_prefixes` is ignored with a note, anything else that does not
        fit is refused in one line (extract/encoders/state_dict.py): a silent partial load
        would give wrong features.
        """
        if self.state_dict is None:
            return
        from extract.encoders.state_dict import load_mapped

        load_mapped(module, self.state_dict, f"--state-dict {self.state_dict}", self.name, self.unused_prefixes)


ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(cls: type[Encoder]) -> type[Encoder]:
    ENCODERS[cls.name] = cls
    return cls


def list_encoders() -> list[str]:
    _import_all()
    return sorted(ENCODERS)


def create_encoder(name: str, **kw: Any) -> Encoder:
    _import_all()
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[name](**kw)


def _import_all() -> None:
    # Importing the package registers every family (one module each).
    import extract.encoders  # noqa: F401
