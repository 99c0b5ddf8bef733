"""TF-IDF bag-of-n-grams text features (`tfidf`), fitted on the train split only.

The classic strong baseline for genre-from-plot (Arevalo et al. 2017, arXiv:1702.01992,
compare their n-gram baselines): scikit-learn's `TfidfVectorizer` with sublinear term
frequency (1 + log tf) and l2-normalized rows. The vocabulary and idf weights come from
`fit(train_texts)`; `extra_state()` pickles the fitted vectorizer so the cache keeps it and
`load_extra_state()` restores it for new texts. The feature size is the vocabulary size.

Options: analyzer "word" | "char_wb", ngram_range (default (1, 2)), max_features (5000),
min_df (2: drop n-grams seen in one training text only), sublinear_tf (True).
"""
from __future__ import annotations

import pickle
from typing import Any, ClassVar

import numpy as np
import torch

from extract.encoders.base import EncodeOutput, Encoder, register_encoder

ANALYZERS = ("word", "char_wb")


@register_encoder
class TfidfEncoder(Encoder):
    name: ClassVar[str] = "tfidf"
    modality: ClassVar[str] = "text"
    defaults: ClassVar[dict[str, Any]] = {"analyzer": "word", "ngram_range": (1, 2), "max_features": 5000,
                                          "min_df": 2, "sublinear_tf": True}
    default_weights: ClassVar[str] = "fit"  # nothing to download: fitted on the train split
    needs_fit: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.state_dict is not None:
            raise ValueError(f"encoder {self.name!r} has no network weights; drop --state-dict")
        o = self.options
        if o["analyzer"] not in ANALYZERS:
            raise ValueError(f"encoder {self.name!r}: analyzer must be one of {list(ANALYZERS)}, "
                             f"got {o['analyzer']!r}")
        ngr = tuple(o["ngram_range"])
        if len(ngr) != 2 or not 1 <= ngr[0] <= ngr[1]:
            raise ValueError(f"encoder {self.name!r}: ngram_range must be (min_n, max_n) with "
                             f"1 <= min_n <= max_n, got {o['ngram_range']!r}")
        o["ngram_range"] = list(ngr)  # JSON-stable in describe()
        self._vectorizer: Any = None

    def _new_vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        o = self.options
        return TfidfVectorizer(analyzer=o["analyzer"], ngram_range=tuple(o["ngram_range"]),
                               max_features=o["max_features"], min_df=o["min_df"],
                               sublinear_tf=o["sublinear_tf"], dtype=np.float32)

    def fit(self, texts: list[str]) -> None:
        """Learn vocabulary and idf from the train split (never dev/test: that would leak)."""
        self._vectorizer = self._new_vectorizer().fit(list(texts))

    @property
    def fitted(self) -> bool:
        return self._vectorizer is not None

    @property
    def dim(self) -> int:
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: the feature size is known after fit(train_texts)")
        return len(self._vectorizer.vocabulary_)

    def load(self, device: torch.device) -> None:
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: call fit(train_texts) (or load_extra_state) before load()")

    def collate(self, items: list[str]) -> list[str]:
        return list(items)

    def encode(self, batch: list[str], tokens: bool = False) -> EncodeOutput:
        if tokens:
            raise ValueError("tfidf has no token-level output")
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: call fit(train_texts) before encode()")
        rows = self._vectorizer.transform(batch).toarray()  # (B, V) dense float32
        return EncodeOutput(features=torch.from_numpy(rows).float())

    def extra_state(self) -> bytes | None:
        return pickle.dumps(self._vectorizer) if self.fitted else None

    def load_extra_state(self, data: bytes) -> None:
        """Restore a vectorizer saved by `extra_state()` (only from caches you made: it is a pickle)."""
        self._vectorizer = pickle.loads(data)

    def preprocess_info(self) -> dict[str, Any]:
        return {"vectorizer": "sklearn TfidfVectorizer", "lowercase": True, "norm": "l2",
                "smooth_idf": True, "fitted_on": "train split"}
