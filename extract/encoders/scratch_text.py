"""`lstm`: paper 001's LSTM text model (Sec. 4.3.1), trained from scratch end to end by `finetune`.

    words -> embedding (E) -> BiLSTM layer 1 .. layer N -> additive attention pooling -> (B, 2*hidden)

- Vocabulary (`fit(train_texts)`, train split only): lowercased word tokens, `<pad>` = 0,
  `<unk>` = 1, then the words seen at least `min_count` times, most frequent first (ties
  alphabetical, so a refit on the same texts gives the same ids), at most `max_size` of them.
  `extra_state()` stores it with the cache (JSON) and `load_extra_state()` restores it, as for
  tfidf; the model also carries a fingerprint of it (buffer `vocab_sha256`), so a --state-dict
  trained on another vocabulary is refused in one line instead of giving shuffled embeddings.
- Embedding E in R^{V x embed_dim}, e_i = E[w_i] (paper 001 Sec. 3.1.1), `<pad>` fixed at 0.
- BiLSTM (Sec. 3.1.2): h_t = [h_t^fwd, h_t^bwd], `layers` single-layer bidirectional LSTMs (one
  module per layer: the blocks `--unfreeze` counts), `dropout` on the input of every layer but
  the first (as nn.LSTM's inter-layer dropout). Sequences are packed, so padding never enters
  the recurrence: a text gets the same features whatever its batch neighbours.
- Attention pooling (`pooling=attention`), paper 001 Eq. 3.7-3.9, the additive score of
  Bahdanau et al. 2015 (arXiv:1409.0473) used to pool one sequence (as in Raffel & Ellis 2015,
  arXiv:1512.08756): e_t = v^T tanh(W h_t), W (attn_dim x 2*hidden) and v without bias as
  the paper writes them; alpha_t = exp(e_t) / sum_i exp(e_i) over the REAL tokens only (padding
  gets alpha = 0); context = sum_t alpha_t h_t. The alternatives: `pooling=last` (the final
  forward and the final backward state, concatenated: our reading of the paper's "without
  attention" ablation, Sec. 4.6.3, which does not say how that model pools) and
  `pooling=mean` (masked mean). A text with no token (punctuation only) gives zeros, which
  extract and predict mask like an empty text (Encoder.empty_rows).

Defaults are paper 001's where it states them (Sec. 4.3.1, Table 4.2): embed_dim 300, 2
layers, hidden 256 per direction, dropout 0.3, max_length 128 (the first 128 tokens), a
vocabulary of at most 69,980 words. Where the default differs: the paper initialises E with
GloVe 300d vectors; here E starts random (seeded), since no embedding file is fetched; with
GloVe the paper's LSTM reached 43.05% macro-F1 on full MM-IMDb. The paper splits MM-IMDb's
pre-tokenized plots at whitespace (`tokenizer=whitespace`); our plots are raw text, where
that glues punctuation to words ("city." != "city"), so the default `tokenizer=words` takes
regex word tokens (letters/digits with inner apostrophes). The paper keeps every token of
its provided vocabulary (`min_count=1`); the default `min_count=2` maps words seen once in
training to `<unk>`, so `<unk>` is trained too and a new word at test time does not read an
untrained embedding. Paper 003's RNN_end2end (GMU, Sec. 3.2) also learns its word vectors
from scratch, lowercasing only; it gives no further sizes.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from extract.encoders.base import EncodeOutput, Encoder, register_encoder
from extract.encoders.scratch import check_int, check_random_weights, check_rate
from extract.encoders.trunk import State, Trunk

TOKENIZERS = ("words", "whitespace")
POOLINGS = ("attention", "last", "mean")
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_FORMAT = "mmgenre.lstm.vocab/1"


def tokenize(text: str, tokenizer: str) -> list[str]:
    """Lowercased word tokens: regex words (`words`) or whitespace-split pieces (`whitespace`)."""
    text = text.lower()
    return _WORD.findall(text) if tokenizer == "words" else text.split()


class WordVocab:
    """Word -> id for the lstm: `<pad>` 0, `<unk>` 1, then the fitted words. Picklable (the
    DataLoader workers collate with it), and named like a Hugging Face tokenizer where the
    fine-tuning code reads one (`unk_token_id`, `pad_token_id`: token dropout)."""

    pad_token, unk_token = "<pad>", "<unk>"
    pad_token_id, unk_token_id = 0, 1

    def __init__(self, words: list[str], tokenizer: str) -> None:
        self.itos = [self.pad_token, self.unk_token, *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.tokenizer = tokenizer

    @classmethod
    def fit(cls, texts: list[str], tokenizer: str, min_count: int, max_size: int) -> "WordVocab":
        counts = Counter(w for t in texts for w in tokenize(t or "", tokenizer))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if not kept:
            raise ValueError(f"encoder 'lstm': no word occurs {min_count}+ times in the {len(texts)} train "
                             "texts; lower -o min_count or check --text-field")
        return cls(kept[:max_size], tokenizer)

    def __len__(self) -> int:
        return len(self.itos)

    def ids(self, text: str, max_length: int) -> list[int]:
        """The first max_length tokens of `text` as ids (unknown words -> `<unk>`)."""
        return [self.stoi.get(w, self.unk_token_id) for w in tokenize(text or "", self.tokenizer)[:max_length]]

    def batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        """input_ids (B, L) and attention_mask (B, L), L = the batch's longest (at least 1)."""
        rows = [self.ids(t, max_length) for t in texts]
        width = max([1, *map(len, rows)])
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, :len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def to_bytes(self) -> bytes:
        return json.dumps({"format": _FORMAT, "tokenizer": self.tokenizer, "itos": self.itos},
                          ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> "WordVocab":
        d = json.loads(bytes(data).decode("utf-8"))
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError("the cache's extra_state is not an lstm vocabulary; re-extract it")
        if d["itos"][:2] != [cls.pad_token, cls.unk_token]:
            raise ValueError("the cache's lstm vocabulary does not start with <pad>, <unk>; re-extract it")
        return cls(d["itos"][2:], d["tokenizer"])

    def fingerprint(self) -> torch.Tensor:
        """sha256 of the vocabulary as a (32,) uint8 tensor (the model's `vocab_sha256` buffer)."""
        digest = hashlib.sha256(self.to_bytes()).digest()
        return torch.tensor(list(digest), dtype=torch.uint8)


class BiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer over packed sequences: (B, L, in) -> (B, L, 2*hidden),
    zero at padding. `dropout` acts on its input (the previous layer's output)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # A text without tokens still runs one (pad) step, then is zeroed: packing needs length >= 1.
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(h), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return out * mask.unsqueeze(-1).to(out.dtype)


class SequencePool(nn.Module):
    """(B, L, D) states + (B, L) mask -> (B, D): attention (Eq. 3.7-3.9), last or mean."""

    def __init__(self, pooling: str, dim: int, attn_dim: int) -> None:
        super().__init__()
        self.pooling = pooling
        if pooling == "attention":
            self.W = nn.Linear(dim, attn_dim, bias=False)
            self.v = nn.Linear(attn_dim, 1, bias=False)

    def weights(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """alpha (B, L): softmax of e_t = v^T tanh(W h_t) over real tokens, 0 at padding."""
        e = self.v(torch.tanh(self.W(h))).squeeze(-1).float()  # (B, L), Eq. 3.8
        any_token = mask.any(dim=1, keepdim=True)
        e = e.masked_fill(~mask & any_token, float("-inf"))  # a text without tokens: uniform, zeroed later
        return torch.softmax(e, dim=1)  # Eq. 3.7

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(h.dtype)
        if self.pooling == "attention":
            alpha = self.weights(h, mask).to(h.dtype)
            return (alpha.unsqueeze(-1) * h * m).sum(1)  # Eq. 3.9 (h is 0 at padding anyway)
        if self.pooling == "mean":
            return (h * m).sum(1) / m.sum(1).clamp(min=1)
        half = h.shape[-1] // 2  # last: forward state at the last token, backward state at the first
        last = (mask.sum(1) - 1).clamp(min=0)
        fwd = h[torch.arange(len(h), device=h.device), last, :half]
        return torch.cat([fwd, h[:, 0, half:]], dim=-1)


class LSTMNet(nn.Module):
    """The module `--state-dict` files hold: embedding, layers.<i>, pool, vocab_sha256."""

    def __init__(self, vocab: WordVocab, o: dict[str, Any]) -> None:
        super().__init__()
        two_h = 2 * o["hidden"]
        self.embedding = nn.Embedding(len(vocab), o["embed_dim"], padding_idx=vocab.pad_token_id)
        self.layers = nn.ModuleList(
            BiLSTMLayer(o["embed_dim"] if i == 0 else two_h, o["hidden"], o["dropout"] if i else 0.0)
            for i in range(o["layers"]))
        self.pool = SequencePool(o["pooling"], two_h, o["attn_dim"] or two_h)
        self.register_buffer("vocab_sha256", vocab.fingerprint())


class LSTMTrunk(Trunk):
    """stem = [embedding], blocks = the BiLSTM layers, tail = [pooling]; text states
    {"h": (B, L, D), "mask": (B, L) bool}."""

    def __init__(self, net: LSTMNet) -> None:
        super().__init__([net.embedding], list(net.layers), [net.pool])

    def embed(self, batch: Any) -> State:
        return {"h": self.stem[0](batch["input_ids"]), "mask": batch["attention_mask"].bool()}

    def block(self, i: int, state: State) -> State:
        return {"h": self.blocks[i](state["h"], state["mask"]), "mask": state["mask"]}

    def pool(self, state: State) -> torch.Tensor:
        return self.tail[0](state["h"], state["mask"])


@register_encoder
class LSTMEncoder(Encoder):
    name: ClassVar[str] = "lstm"
    modality: ClassVar[str] = "text"
    defaults: ClassVar[dict[str, Any]] = {
        "embed_dim": 300, "hidden": 256, "layers": 2, "dropout": 0.3,  # paper 001 Sec. 4.3.1
        "max_length": 128, "max_size": 69_980,  # paper 001 Table 4.2
        "min_count": 2, "tokenizer": "words",  # deviations: module docstring
        "pooling": "attention", "attn_dim": None,  # None = 2*hidden (W square; the paper gives no size)
    }
    needs_fit: ClassVar[bool] = True
    from_scratch: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        check_random_weights(self.name, self.weights)
        o = self.options
        for key, low in (("embed_dim", 1), ("hidden", 1), ("layers", 1), ("max_length", 1),
                         ("min_count", 1), ("max_size", 1)):
            check_int(self.name, key, o[key], low)
        o["dropout"] = check_rate(self.name, "dropout", o["dropout"])
        for key, valid in (("tokenizer", TOKENIZERS), ("pooling", POOLINGS)):
            if o[key] not in valid:
                raise ValueError(f"encoder {self.name!r}: {key} must be one of {list(valid)}, got {o[key]!r}")
        if o["attn_dim"] is not None:
            check_int(self.name, "attn_dim", o["attn_dim"], 1)
            if o["pooling"] != "attention":
                raise ValueError(f"encoder {self.name!r}: option attn_dim applies to pooling=attention only")
        self.tokenizer: WordVocab | None = None
        self.model: LSTMNet | None = None
        self._net: LSTMTrunk | None = None  # dropped when pickled for workers (Encoder.__getstate__)

    @property
    def dim(self) -> int:
        return 2 * self.options["hidden"]

    def fit(self, texts: list[str]) -> None:
        """The vocabulary from the train split (never dev/test: that would leak)."""
        o = self.options
        self.tokenizer = WordVocab.fit(list(texts), o["tokenizer"], o["min_count"], o["max_size"])

    def _vocab(self) -> WordVocab:
        if self.tokenizer is None:
            raise ValueError(f"encoder {self.name!r}: call fit(train_texts) (or load_extra_state) first")
        return self.tokenizer

    def load(self, device: torch.device) -> None:
        net = LSTMNet(self._vocab(), self.options)
        self._check_vocabulary(net)
        self._load_state_dict(net)
        self.model = net.eval().to(device)
        self._net = LSTMTrunk(self.model)
        self.device = device

    def _check_vocabulary(self, net: LSTMNet) -> None:
        """A --state-dict trained on another vocabulary: one line, before the generic key checks."""
        if self.state_dict is None:
            return
        from extract.encoders.state_dict import read_state_dict

        flag = f"--state-dict {self.state_dict}"
        sd = read_state_dict(self.state_dict, flag)
        key = next((k for k in sd if k.split(".")[-1] == "vocab_sha256"), None)
        if key is None or torch.equal(sd[key].to(torch.uint8).cpu(), net.vocab_sha256):
            return  # no fingerprint: the key checks of load_mapped decide
        emb = next((v for k, v in sd.items() if k.endswith("embedding.weight")), None)
        size = f"{emb.shape[0]} ids" if emb is not None else "another size"
        raise ValueError(f"{flag} was trained on another vocabulary ({size}) than the one fitted here "
                         f"({len(self._vocab())} ids): extract with the data set and the options (tokenizer, "
                         "min_count, max_size) it was fine-tuned with")

    def collate(self, items: list[str]) -> dict[str, torch.Tensor]:
        return self._vocab().batch(list(items), self.options["max_length"])

    def encode(self, batch: dict[str, torch.Tensor], tokens: bool = False) -> EncodeOutput:
        if self._net is None:
            raise ValueError(f"encoder {self.name!r}: call load(device) before encode()")
        batch = {k: batch[k].to(self.device, non_blocking=True) for k in ("input_ids", "attention_mask")}
        state = self._net.prefix(batch, self._net.n_blocks)
        out = EncodeOutput(features=self._net.pool(state).float().cpu())
        if tokens:  # last layer's states, padded to max_length: T is fixed per config
            h, mask = state["h"].float(), state["mask"]
            pad = self.options["max_length"] - h.shape[1]
            out.tokens = torch.nn.functional.pad(h, (0, 0, 0, pad)).cpu()  # (B, max_length, 2*hidden)
            out.token_mask = torch.nn.functional.pad(mask, (0, pad)).cpu()  # (B, max_length)
        return out

    def trunk(self) -> Trunk:
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        return LSTMTrunk(self.model)

    def extra_state(self) -> bytes | None:
        return self.tokenizer.to_bytes() if self.tokenizer is not None else None

    def load_extra_state(self, data: bytes) -> None:
        """Restore the vocabulary saved by `extra_state()` (JSON: safe to read from any cache)."""
        vocab = WordVocab.from_bytes(data)
        if vocab.tokenizer != self.options["tokenizer"]:
            raise ValueError(f"the cache's lstm vocabulary was built with tokenizer={vocab.tokenizer!r}, "
                             f"this encoder has tokenizer={self.options['tokenizer']!r}")
        self.tokenizer = vocab

    def preprocess_info(self) -> dict[str, Any]:
        # Static (the cache name is hashed before fit): the fitted words come from the train split.
        word = _WORD.pattern if self.options["tokenizer"] == "words" else "str.split()"
        return {"tokenizer": f"lowercase, {word}", "special_tokens": ["<pad>", "<unk>"],
                "truncation": "first max_length tokens", "vocabulary": "fitted on train split, by count then word"}
