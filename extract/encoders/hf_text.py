"""Hugging Face transformer text encoders: `bert` and `distilbert` (and the base of `minilm`).

Any checkpoint name or local directory that `transformers.AutoModel` loads works as weights
(defaults: bert-base-uncased, Devlin et al. 2019, arXiv:1810.04805; distilbert-base-uncased,
Sanh et al. 2019, arXiv:1910.01108). Local directories load with `local_files_only=True`, so
they never touch the hub.

Options:
- pooling: "mean" (default; average of the last hidden states over real tokens, which for a
  frozen BERT beats [CLS], Reimers & Gurevych 2019, arXiv:1908.10084), "cls" (the [CLS]
  state), or "pooler" (BERT's tanh pooler; only for models that have one, else ValueError).
- max_length: tokens kept per text (truncation), and the fixed T of token outputs.
- normalize: L2-normalize the pooled features.
- config: only with weights "random": kwargs for the model's config class (e.g. a tiny
  hidden size for tests). "random" also uses a small built-in WordPiece vocabulary instead of
  the checkpoint's tokenizer, so it needs no download: it is meant for tests, not for results.

With `tokens=True` the last hidden states come padded to max_length: (B, max_length, H)
plus a (B, max_length) mask of real tokens.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from extract.encoders.base import EncodeOutput, Encoder, file_sha256, register_encoder

POOLINGS = ("mean", "cls", "pooler")
# Weight files a local checkpoint directory may hold, hashed into the cache name.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def cached_sha256(path: str | Path) -> str:
    """`file_sha256`, computed once per (path, size, mtime): big weight files are hashed once."""
    st = Path(path).stat()
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def _tiny_vocab() -> list[str]:
    """A WordPiece vocabulary in which any ASCII text tokenizes (letters, digits, punctuation)."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]  # lowercased by the tokenizer
    words = ["the", "a", "an", "and", "of", "to", "in", "is", "his", "her", "he", "she", "they",
             "man", "woman", "young", "life", "love", "family", "world", "story", "film", "city",
             "war", "police", "murder", "killer", "detective", "friends", "new", "finds", "must"]
    pieces = ["##" + c for c in chars if c.isalnum()]
    return list(dict.fromkeys(special + chars + words + pieces))  # unique: ids must be dense


def tiny_tokenizer() -> Any:
    """A BERT-style WordPiece tokenizer over `_tiny_vocab()`, built in memory (for "random" weights).

    Built with the `tokenizers` library directly, so it behaves the same on transformers 4 and 5.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(_tiny_vocab())}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


class HFTextEncoder(Encoder):
    """A transformers encoder-only model with mean/CLS/pooler pooling.

    The attribute `model` (the AutoModel) is the module whose `state_dict()` the
    `state_dict=` file must match.
    """

    modality: ClassVar[str] = "text"
    defaults: ClassVar[dict[str, Any]] = {"pooling": "mean", "max_length": 512, "normalize": False,
                                          "config": None}
    needs_internet: ClassVar[bool] = True
    # A *ForSequenceClassification checkpoint's head (bert.* / distilbert.* keys are mapped):
    # the features are read before it.
    unused_prefixes: ClassVar[tuple[str, ...]] = ("classifier.", "pre_classifier.")
    # For weights "random": the transformers config class and its defaults before `config`.
    config_class: ClassVar[str] = "BertConfig"
    random_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        o = self.options
        if o["pooling"] not in POOLINGS:
            raise ValueError(f"encoder {self.name!r}: pooling must be one of {list(POOLINGS)}, "
                             f"got {o['pooling']!r}")
        if not isinstance(o["max_length"], int) or o["max_length"] < 2:
            raise ValueError(f"encoder {self.name!r}: max_length must be an int >= 2, got {o['max_length']!r}")
        if o["config"] is not None and self.weights != "random":
            raise ValueError(f"encoder {self.name!r}: option 'config' is only for weights 'random' "
                             f"(got weights {self.weights!r})")
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self._hidden: int | None = None

    # ---- weights ----------------------------------------------------------------------
    def resolved_weights(self) -> str:
        """What transformers loads: a hub name or a local directory."""
        return self.weights

    def weights_tag(self) -> str:
        p = Path(self.resolved_weights())
        if self.weights != "random" and p.is_dir():
            for f in _WEIGHT_FILES:
                if (p / f).is_file():
                    return f"{self.weights}:{f}@sha256:{cached_sha256(p / f)}"
        return super().weights_tag()

    def _load_tokenizer(self) -> Any:
        if self.weights == "random":
            return tiny_tokenizer()
        from transformers import AutoTokenizer

        src = self.resolved_weights()
        return AutoTokenizer.from_pretrained(src, local_files_only=Path(src).exists())

    def _build_model(self) -> torch.nn.Module:
        import transformers

        if self.weights == "random":
            cfg_cls = getattr(transformers, self.config_class)
            kwargs = {**self.random_config, **(self.options["config"] or {}), "vocab_size": len(self.tokenizer)}
            return transformers.AutoModel.from_config(cfg_cls(**kwargs))
        src = self.resolved_weights()
        model, info = transformers.AutoModel.from_pretrained(
            src, local_files_only=Path(src).exists(), output_loading_info=True)
        if self.options["pooling"] == "pooler" and any(k.startswith("pooler.") for k in info["missing_keys"]):
            raise ValueError(f"encoder {self.name!r}: checkpoint {self.weights!r} has no trained pooler "
                             f"weights; use pooling 'mean' or 'cls'")
        return model

    # ---- Encoder API ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self._hidden is None:
            raise ValueError(f"encoder {self.name!r}: the feature size is known after load(device)")
        return self._hidden

    def load(self, device: torch.device) -> None:
        if self.tokenizer is None:
            self.tokenizer = self._load_tokenizer()
        model = self._build_model()
        if self.options["pooling"] == "pooler" and getattr(model, "pooler", None) is None:
            raise ValueError(f"encoder {self.name!r}: {type(model).__name__} has no pooler; "
                             f"use pooling 'mean' or 'cls'")
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and self.options["max_length"] > limit:
            raise ValueError(f"encoder {self.name!r}: max_length {self.options['max_length']} exceeds "
                             f"the model's {limit} positions")
        self._load_state_dict(model)
        self.model = model.eval().to(device)
        self._hidden = int(model.config.hidden_size)  # DistilBERT maps hidden_size -> dim
        self.device = device

    def preprocess(self, raw: str) -> str:
        return raw

    def collate(self, items: list[str]) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:  # in a worker that got the encoder pickled before load()
            self.tokenizer = self._load_tokenizer()
        # Pad to the longest text of the batch; encode() pads token outputs to max_length.
        # No token_type_ids: single-segment inputs, where BERT's default (all zeros) is the same.
        enc = self.tokenizer(list(items), padding="longest", truncation=True,
                             max_length=self.options["max_length"], return_tensors="pt",
                             return_token_type_ids=False)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def encode(self, batch: dict[str, torch.Tensor], tokens: bool = False) -> EncodeOutput:
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call load(device) before encode()")
        ids = batch["input_ids"].to(self.device, non_blocking=True)  # (B, L)
        mask = batch["attention_mask"].to(self.device, non_blocking=True)  # (B, L)
        out = self.model(input_ids=ids, attention_mask=mask)
        h = out.last_hidden_state.float()  # (B, L, H)
        pooling = self.options["pooling"]
        if pooling == "cls":
            feats = h[:, 0]  # (B, H)
        elif pooling == "pooler":
            feats = out.pooler_output.float()  # (B, H)
        else:
            m = mask.unsqueeze(-1).to(h.dtype)  # (B, L, 1)
            feats = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)
        if self.options["normalize"]:
            feats = F.normalize(feats, dim=-1)
        res = EncodeOutput(features=feats.cpu())
        if tokens:
            pad = self.options["max_length"] - h.shape[1]
            res.tokens = F.pad(h, (0, 0, 0, pad)).cpu()  # (B, max_length, H)
            res.token_mask = F.pad(mask.bool(), (0, pad), value=False).cpu()  # (B, max_length)
        return res

    def trunk(self) -> Any:
        """Embeddings, layers and pooler of `self.model` (extract/encoders/trunk_hf.py), to train."""
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        from extract.encoders.trunk_hf import HFTrunk

        return HFTrunk(self.model, self.options["pooling"], self.options["normalize"])

    def preprocess_info(self) -> dict[str, Any]:
        return {"tokenizer": "tiny-wordpiece (random weights, tests only)" if self.weights == "random"
                else f"AutoTokenizer({self.weights})",
                "max_length": self.options["max_length"], "truncation": True,
                "token_type_ids": "zeros"}



@register_encoder
class BertEncoder(HFTextEncoder):
    name: ClassVar[str] = "bert"
    default_weights: ClassVar[str] = "bert-base-uncased"
    config_class: ClassVar[str] = "BertConfig"


@register_encoder
class DistilBertEncoder(HFTextEncoder):
    name: ClassVar[str] = "distilbert"
    default_weights: ClassVar[str] = "distilbert-base-uncased"
    config_class: ClassVar[str] = "DistilBertConfig"
