"""HeadConfig: every setting of one head-training run, validated, saved with the run."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEDULERS = ("plateau", "cosine", "none")


@dataclass
class HeadConfig:
    features: dict[str, str]  # modality name -> cache file
    fusion: str = "gmu"
    fusion_kw: dict[str, Any] = field(default_factory=dict)  # head options (hidden, dropout, modality...)
    loss: str = "bce"
    loss_kw: dict[str, Any] = field(default_factory=dict)  # e.g. gamma, alpha for focal / asl
    label_smoothing: float = 0.0
    threshold: str = "per_class"  # fixed | global | per_class, tuned on dev
    lr: float = 1e-3
    weight_decay: float = 1e-2  # AdamW decoupled decay
    batch_size: int = 256  # cached-feature heads are tiny: bigger batches cut per-step overhead
    max_epochs: int = 200
    patience: int = 5  # epochs without dev macro-F1 gain > min_delta before stopping
    min_delta: float = 1e-4
    warmup_epochs: float = 0.0  # linear warmup from 1% of lr, in (fractional) epochs
    scheduler: str = "plateau"  # plateau (halve lr on a dev plateau) | cosine | none
    grad_clip: float = 1.0  # max grad norm; 0 disables
    seed: int = 0
    device: str = "auto"
    tokens: bool = True  # use token features when the cache has them and the head attends
    # z-score pooled features with train statistics (FeatureSet.standardize), saved in head.pt and
    # applied by predict: True = every modality, False = none, None (default, "auto") = every
    # modality but sparse ones (TF-IDF, multi-hot), whose rare columns z-scoring blows up.
    standardize: bool | None = None
    train_on_unsplit: bool = False  # also train on rows outside the official split
    name: str | None = None  # run folder name; default from the settings
    out: str = "runs"

    def __post_init__(self) -> None:
        from train_heads.fusion import list_fusions, validate_options
        from train_heads.losses import check_loss_options, list_losses
        from train_heads.thresholds import THRESHOLDS

        if self.fusion not in list_fusions():
            raise ValueError(f"Unknown fusion {self.fusion!r}; choose from {list_fusions()}")
        validate_options(self.fusion, self.fusion_kw)
        if self.loss not in list_losses():
            raise ValueError(f"Unknown loss {self.loss!r}; choose from {list_losses()}")
        check_loss_options(self.loss, self.loss_kw)  # a typo fails here, not in the first batch
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"--threshold must be one of {sorted(THRESHOLDS)}, got {self.threshold!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"--scheduler must be one of {list(SCHEDULERS)}, got {self.scheduler!r}")
        for flag, v, lo in (("--lr", self.lr, 0.0), ("--batch-size", self.batch_size, 0),
                            ("--max-epochs", self.max_epochs, 0), ("--patience", self.patience, 0)):
            if not v > lo:
                raise ValueError(f"{flag} must be > {lo}, got {v}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.name is not None and (not self.name or self.name.startswith(".") or "/" in self.name
                                      or "\\" in self.name or "\0" in self.name):
            raise ValueError(f"--name {self.name!r} must be a plain folder name (no '/', not starting with '.')")
        if self.warmup_epochs < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("--warmup-epochs, --weight-decay and --grad-clip must be >= 0")

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (not the name, output folder or device)."""
        d = asdict(self)
        for k in ("name", "out", "device"):
            d.pop(k)
        return d

    def key(self, cache_hashes: dict[str, str]) -> str:
        blob = json.dumps({**self.settings(), "features": cache_hashes}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    def default_name(self, cache_hashes: dict[str, str], encoders: dict[str, str | None] | None = None) -> str:
        """<fusion>-<features>-<loss>-<threshold>-s<seed>-<settings hash>, where <features> is
        `name.encoder` per modality the head reads, joined by '+' (e.g.
        gmu-image.efficientnet-lite0+text.minilm-bce-per_class-s0-1a2b3c4d): readable, and
        unique by the hash of every setting and each cache's settings hash."""
        mods = [self.fusion_kw["modality"]] if self.fusion_kw.get("modality") else sorted(self.features)
        enc = encoders or {}
        feats = "+".join(_safe(f"{m}.{enc[m]}" if enc.get(m) else m, _PART_MAX) for m in mods)
        feats = _safe(feats, _FEATS_MAX)
        return f"{self.fusion}-{feats}-{self.loss}-{self.threshold}-s{self.seed}-{self.key(cache_hashes)}"


_PART_MAX, _FEATS_MAX = 40, 120  # name parts are cut so a run folder name stays < 200 characters


def _safe(s: str, n: int) -> str:
    """Filesystem-safe (letters, digits, _.+-; anything else becomes '_') and at most n characters."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", s)[:n]
