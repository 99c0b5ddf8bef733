"""FinetuneConfig: every setting of one end-to-end / partial fine-tuning run, validated, saved.

A run = one backbone per modality (`BackboneSpec`: an `ENCODERS` name with the same weights
and options as `extract`, and how much of it trains) + one `FUSIONS` head trained jointly.
The head, loss, thresholds, optimiser schedule and early stopping are a `HeadConfig`, so the
run folder and its metrics are those of `train-head`; `head.lr` is the head's learning rate,
`backbone_lr` the backbones' (discriminative learning rates, Howard & Ruder 2018, ULMFiT).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from extract.dataset_config import DatasetConfig
from finetune.augment import describe_augment
from train_heads.config import HeadConfig

AMP_MODES = ("auto", "bf16", "fp16", "off")  # auto: bf16 on CUDA, off on CPU
PREFIX_MODES = ("auto", "off")  # auto: cache the frozen prefix when nothing augments the input


@dataclass
class BackboneSpec:
    encoder: str  # ENCODERS name (clip-image, minilm, lstm...)
    weights: str | None = None  # as extract --weights; None: the encoder's default
    options: dict[str, Any] = field(default_factory=dict)  # as extract -o
    state_dict: str | None = None  # as extract --state-dict: start from these weights
    unfreeze: str = "last:1"  # none | last:N | all (N counts the encoder's blocks, extract/encoders/trunk.py)
    text_field: str = "plot"  # the record text a text backbone reads


@dataclass
class FinetuneConfig:
    dataset: DatasetConfig
    backbones: dict[str, BackboneSpec]  # feature name (image, text...) -> backbone
    head: HeadConfig  # fusion, loss, thresholds, head lr, batch size, epochs, schedule, seed, name, out
    backbone_lr: float = 2e-5  # top block's lr; lower blocks x layer_decay per block down
    layer_decay: float = 1.0  # layer-wise lr decay (1: one lr for the whole backbone)
    unfreeze_every: int = 0  # gradual unfreezing: one more block every K epochs (0: off)
    grad_accum: int = 1  # optimiser step every K batches (effective batch = batch_size * K)
    grad_checkpointing: bool = False  # recompute trainable blocks' activations in backward
    amp: str = "auto"  # auto | bf16 | fp16 | off; CPU runs in fp32 whatever is asked
    channels_last: bool = True  # CNN inputs in channels_last on CUDA
    augment: str = "none"  # poster augmentation preset or key=value list (finetune/augment.py)
    token_dropout: float = 0.0  # text: share of real tokens replaced by [UNK] in training
    cached_prefix: str = "auto"  # auto: frozen blocks run once into a hashed cache; off: every epoch
    workers: int = 2  # DataLoader workers decoding posters / tokenizing
    cache_dir: str = "caches"  # where the prefix and the fine-tuned feature caches go
    export: str | None = None  # also copy the fine-tuned backbones' state dicts here
    resume: bool = True  # continue a killed run of the same settings from its last epoch

    def __post_init__(self) -> None:
        from finetune.augment import parse_augment

        if not self.backbones:
            raise ValueError("finetune needs at least one backbone: --image-encoder and/or --text-encoder")
        for flag, v in (("--backbone-lr", self.backbone_lr), ("--layer-decay", self.layer_decay)):
            if not v > 0:
                raise ValueError(f"{flag} must be > 0, got {v}")
        if self.layer_decay > 1:
            raise ValueError(f"--layer-decay must be in (0, 1] (lower blocks learn slower), got {self.layer_decay}")
        if self.grad_accum < 1 or self.unfreeze_every < 0 or self.workers < 0:
            raise ValueError("--grad-accum must be >= 1, --unfreeze-every and --workers >= 0")
        if self.amp not in AMP_MODES:
            raise ValueError(f"--amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if self.cached_prefix not in PREFIX_MODES:
            raise ValueError(f"--cached-prefix must be one of {list(PREFIX_MODES)}, got {self.cached_prefix!r}")
        if not 0.0 <= self.token_dropout < 1.0:
            raise ValueError(f"--token-dropout must be in [0, 1), got {self.token_dropout}")
        parse_augment(self.augment)  # raises, naming --augment
        if self.head.calibrate != "none" or self.head.train_on_unsplit:
            raise ValueError("finetune supports neither --calibrate nor --train-on-unsplit yet")

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (not names, folders, workers or resume)."""
        d = asdict(self)
        for k in ("dataset", "cache_dir", "export", "resume", "workers"):
            d.pop(k)
        d["head"] = {k: v for k, v in self.head.settings().items() if k != "features"}
        d["augment"] = describe_augment(self.augment)  # by effect, not spelling (light == its settings)
        return d

    def key(self, dataset_fingerprint: str) -> str:
        blob = json.dumps({**self.settings(), "dataset": dataset_fingerprint}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    def default_name(self, dataset_fingerprint: str) -> str:
        """ft-<fusion>-<name.encoder.unfreeze>+...-<loss>-<threshold>-s<seed>-<hash>."""
        parts = "+".join(f"{m}.{b.encoder}.{b.unfreeze.replace(':', '')}" for m, b in sorted(self.backbones.items()))
        parts = re.sub(r"[^A-Za-z0-9_.+-]", "_", parts)[:120]
        h = self.head
        return f"ft-{h.fusion}-{parts}-{h.loss}-{h.threshold}-s{h.seed}-{self.key(dataset_fingerprint)}"

    def group_name(self, dataset_fingerprint: str) -> str:
        """The run's name without its seed: what runs of several seeds share (a sweep group)."""
        from dataclasses import replace

        seedless = replace(self, head=replace(self.head, seed=0, name=None)).key(dataset_fingerprint)
        return self.default_name(dataset_fingerprint).rsplit("-s", 1)[0] + f"-{seedless}"

    def run_dir(self, dataset_fingerprint: str) -> Path:
        return Path(self.head.out) / (self.head.name or self.default_name(dataset_fingerprint))
