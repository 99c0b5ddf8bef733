"""TF-IDF-weighted multi-hot metadata features (`multihot`), fitted on the train split only.

The strong simple baseline for metadata: one block per field (director, cast, writer,
keywords, companies, countries, languages...), each a multi-hot vector over the entities
seen in at least `min_count` TRAIN movies, weighted by their smoothed idf and l2-normalised
per field (scikit-learn's `TfidfVectorizer` over entity lists with binary term frequency), so
that a field with ten names (cast) does not outweigh a field with one (director). The blocks
are concatenated in field order. Dev and test movies only look entities up: an entity first
seen outside train has no column, and a movie none of whose entities is known gets an
all-zero row, which `extract` masks like a missing poster ("no_metadata").

Options: fields (default: the list-valued fields of the poster subset's metadata), min_count
(2: an entity of one training movie cannot generalise), weighting "tfidf" | "binary" (plain
multi-hot), max_per_field (cap each field's vocabulary to its most frequent entities; None =
no cap). Rows are mostly zeros: `train-head` leaves such modalities un-standardised.
"""
from __future__ import annotations

import pickle
from typing import Any, ClassVar

import numpy as np
import torch

from extract.encoders.base import EncodeOutput, Encoder, register_encoder

DEFAULT_FIELDS = ["director", "cast", "writer", "producer", "keywords", "companies", "countries", "languages"]
WEIGHTINGS = ("tfidf", "binary")


def _entities(row: list[str]) -> list[str]:
    """The analyzer: a row is already its list of entity names (module level: picklable)."""
    return row


@register_encoder
class MultihotEncoder(Encoder):
    name: ClassVar[str] = "multihot"
    modality: ClassVar[str] = "meta"
    defaults: ClassVar[dict[str, Any]] = {"fields": DEFAULT_FIELDS, "min_count": 2, "weighting": "tfidf",
                                          "max_per_field": None}
    default_weights: ClassVar[str] = "fit"  # nothing to download: the vocabulary comes from train
    needs_fit: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.state_dict is not None:
            raise ValueError(f"encoder {self.name!r} has no network weights; drop --state-dict")
        o = self.options
        o["fields"] = [o["fields"]] if isinstance(o["fields"], str) else list(o["fields"])
        if not o["fields"] or len(set(o["fields"])) != len(o["fields"]):
            raise ValueError(f"encoder {self.name!r}: fields must be distinct names, got {o['fields']!r}")
        if o["weighting"] not in WEIGHTINGS:
            raise ValueError(f"encoder {self.name!r}: weighting must be one of {list(WEIGHTINGS)}, "
                             f"got {o['weighting']!r}")
        if not isinstance(o["min_count"], int) or o["min_count"] < 1:
            raise ValueError(f"encoder {self.name!r}: min_count must be an integer >= 1, got {o['min_count']!r}")
        self._vectorizers: dict[str, Any] | None = None

    def fit_meta(self, rows: list[dict[str, list[str]]], labels: list[list[str] | None]) -> None:
        """Vocabulary and idf per field from the TRAIN rows (labels is None elsewhere)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        train = [r for r, y in zip(rows, labels) if y is not None]
        if not train:
            raise ValueError(f"encoder {self.name!r}: no train rows to fit the entity vocabulary on")
        o = self.options
        self._vectorizers = {}
        for f in o["fields"]:
            docs = [r.get(f, []) for r in train]
            if sum(len(d) > 0 for d in docs) < o["min_count"]:
                continue  # too few train movies have this field: no column could be kept
            vec = TfidfVectorizer(analyzer=_entities, lowercase=False, binary=True, min_df=o["min_count"],
                                  use_idf=o["weighting"] == "tfidf", norm="l2", max_features=o["max_per_field"],
                                  dtype=np.float32)
            try:
                self._vectorizers[f] = vec.fit(docs)
            except ValueError:  # no entity reaches min_count
                continue
        if not self._vectorizers:
            raise ValueError(f"encoder {self.name!r}: no entity of fields {o['fields']} appears in "
                             f">= {o['min_count']} train rows; lower -o min_count or pick other fields")

    @property
    def fitted(self) -> bool:
        return self._vectorizers is not None

    @property
    def dim(self) -> int:
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: the feature size is known after fitting on train")
        return sum(len(v.vocabulary_) for v in self._vectorizers.values())

    def load(self, device: torch.device) -> None:
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: fit on the train split (or load_extra_state) before load()")

    def collate(self, items: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
        return list(items)

    def encode(self, batch: list[dict[str, list[str]]], tokens: bool = False) -> EncodeOutput:
        if tokens:
            raise ValueError("multihot has no token-level output")
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: fit on the train split before encode()")
        blocks = [v.transform([r.get(f, []) for r in batch]).toarray() for f, v in self._vectorizers.items()]
        return EncodeOutput(features=torch.from_numpy(np.concatenate(blocks, axis=1)).float())

    def extra_state(self) -> bytes | None:
        return pickle.dumps(self._vectorizers) if self.fitted else None

    def load_extra_state(self, data: bytes) -> None:
        """Restore the vocabularies saved by `extra_state()` (only from caches you made: a pickle)."""
        self._vectorizers = pickle.loads(data)

    def preprocess_info(self) -> dict[str, Any]:
        return {"vectorizer": "sklearn TfidfVectorizer over entity lists, binary tf, l2 per field",
                "fitted_on": "train split"}
