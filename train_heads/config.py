"""HeadConfig: every setting of one head-training run, validated, saved with the run.

Optimiser and schedule settings follow the two papers that state them (both AdamW with
ReduceLROnPlateau on dev macro-F1, eq. 3.33 of paper 001: ``lr_new = lr_old * factor`` after
``patience`` epochs without gain):

    paper 000  --plateau-factor 0.2 --plateau-patience 2   (lr 1e-4, weight decay 1e-5)
    paper 001  --plateau-factor 0.5 --plateau-patience 7 --min-lr 1e-6   (weight decay 0.05)

Our defaults (factor 0.5, patience ``max(1, patience // 3)``, no floor) suit heads on
cached features, which plateau within a few epochs; they are today's numbers.
Threshold grid: paper 001 (Sec. 4.5.2) searches 0.1..0.9 step 0.02 (``--threshold-grid
0.1:0.9:0.02``); ours is 0.05..0.95 step 0.01.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEDULERS = ("plateau", "cosine", "none")
CALIBRATIONS = ("none", "temperature")  # temperature: Guo et al. 2017, fitted on dev (calibration.py)
DEFAULT_THRESHOLD_GRID = "0.05:0.95:0.01"  # thresholds.DEFAULT_GRID, as LO:HI:STEP
_SGD_MOMENTUM = 0.9  # the momentum default; only SGD uses it


@dataclass
class HeadConfig:
    features: dict[str, str]  # modality name -> cache file
    fusion: str = "gmu"
    fusion_kw: dict[str, Any] = field(default_factory=dict)  # head options (hidden, dropout, modality...)
    loss: str = "bce"
    loss_kw: dict[str, Any] = field(default_factory=dict)  # e.g. gamma, alpha for focal / asl
    label_smoothing: float = 0.0
    label_smoothing_form: str = "symmetric"  # symmetric | paper000 (losses.SMOOTHING_FORMS)
    threshold: str = "per_class"  # fixed | global | per_class, tuned on dev
    threshold_grid: str = DEFAULT_THRESHOLD_GRID  # LO:HI:STEP, both ends included (global, per_class)
    fixed_threshold: float = 0.5  # the threshold of `fixed`
    calibrate: str = "none"  # none | temperature (one T fitted on dev, applied before thresholds)
    optimizer: str = "adamw"  # adamw | adam | sgd (train_heads.optimizers.OPTIMIZERS)
    momentum: float = _SGD_MOMENTUM  # SGD only
    lr: float = 1e-3
    weight_decay: float = 1e-2  # AdamW: decoupled decay; Adam, SGD: L2 added to the gradient
    batch_size: int = 256  # cached-feature heads are tiny: bigger batches cut per-step overhead
    max_epochs: int = 200
    patience: int = 5  # epochs without dev macro-F1 gain > min_delta before stopping
    min_delta: float = 1e-4
    warmup_epochs: float = 0.0  # linear warmup from 1% of lr, in (fractional) epochs
    scheduler: str = "plateau"  # plateau (lr * plateau_factor on a dev plateau) | cosine | none
    plateau_factor: float = 0.5  # ReduceLROnPlateau factor (paper 001 eq. 3.33)
    plateau_patience: int | None = None  # epochs without dev gain before a cut; None: max(1, patience // 3)
    min_lr: float = 0.0  # lr floor of plateau; eta_min of cosine
    grad_clip: float = 1.0  # max grad norm; 0 disables
    seed: int = 0
    device: str = "auto"
    tokens: bool = True  # use token features when the cache has them and the head attends
    # z-score pooled features with train statistics (FeatureSet.standardize), saved in head.pt and
    # applied by predict: True = every modality, False = none, None (default, "auto") = every
    # modality but sparse ones (TF-IDF, multi-hot), whose rare columns z-scoring blows up.
    standardize: bool | None = None
    train_on_unsplit: bool = False  # also train on rows outside the official split
    # Each training row drops each modality with this probability (never all of a row's), so
    # the head learns to predict with modalities missing (train_heads/missing.py); 0 = off
    modality_dropout: float = 0.0
    name: str | None = None  # run folder name; default from the settings
    out: str = "runs"

    def __post_init__(self) -> None:
        from train_heads.fusion import list_fusions, validate_options
        from train_heads.losses import SMOOTHING_FORMS, check_label_smoothing, check_loss_options, list_losses
        from train_heads.thresholds import THRESHOLDS, parse_grid
        from train_heads.optimizers import OPTIMIZERS

        if self.fusion not in list_fusions():
            raise ValueError(f"Unknown fusion {self.fusion!r}; choose from {list_fusions()}")
        validate_options(self.fusion, self.fusion_kw)
        if self.loss not in list_losses():
            raise ValueError(f"Unknown loss {self.loss!r}; choose from {list_losses()}")
        check_loss_options(self.loss, self.loss_kw)  # a typo fails here, not in the first batch
        self.modality_dropout = _number("--modality-dropout", self.modality_dropout)
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"--modality-dropout must be in [0, 1), got {self.modality_dropout}")
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
        for flag, value, choices in (("--label-smoothing-form", self.label_smoothing_form, SMOOTHING_FORMS),
                                     ("--calibrate", self.calibrate, CALIBRATIONS),
                                     ("--optimizer", self.optimizer, tuple(OPTIMIZERS))):
            if value not in choices:
                raise ValueError(f"{flag} must be one of {list(choices)}, got {value!r}")
        check_label_smoothing(self.label_smoothing, self.label_smoothing_form)  # paper000 needs eps < 0.5
        self._check_optimizer_and_schedule()
        parse_grid(self.threshold_grid)  # raises, naming --threshold-grid
        self.fixed_threshold = _number("--fixed-threshold", self.fixed_threshold)
        if not 0.0 <= self.fixed_threshold <= 1.0:
            raise ValueError(f"--fixed-threshold must be in [0, 1], got {self.fixed_threshold}")

    def _check_optimizer_and_schedule(self) -> None:
        """--momentum, --plateau-*, --min-lr: in range, and only with the optimiser or scheduler
        that reads them (a value nothing reads would be recorded in the run but change nothing)."""
        self.momentum = _number("--momentum", self.momentum)
        self.plateau_factor = _number("--plateau-factor", self.plateau_factor)
        self.min_lr = _number("--min-lr", self.min_lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer != "sgd" and self.momentum != _SGD_MOMENTUM:
            raise ValueError(f"--momentum applies to --optimizer sgd only (got --optimizer {self.optimizer})")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ValueError(f"--plateau-factor must be in (0, 1), got {self.plateau_factor}")
        if self.plateau_patience is not None and (isinstance(self.plateau_patience, bool)
                                                  or not isinstance(self.plateau_patience, int)
                                                  or self.plateau_patience < 0):
            raise ValueError(f"--plateau-patience must be an integer >= 0, got {self.plateau_patience!r}")
        if not 0.0 <= self.min_lr < self.lr:
            raise ValueError(f"--min-lr must be >= 0 and below --lr {self.lr}, got {self.min_lr}")
        if self.scheduler != "plateau":
            for flag, set_ in (("--plateau-factor", self.plateau_factor != 0.5),
                               ("--plateau-patience", self.plateau_patience is not None)):
                if set_:
                    raise ValueError(f"{flag} applies to --scheduler plateau only (got --scheduler {self.scheduler})")
        if self.scheduler == "none" and self.min_lr:
            raise ValueError("--min-lr applies to --scheduler plateau or cosine (got --scheduler none)")

    def plateau_patience_used(self) -> int:
        """ReduceLROnPlateau patience: --plateau-patience, or by default max(1, patience // 3)."""
        return self.plateau_patience if self.plateau_patience is not None else max(1, self.patience // 3)

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (not the name, output folder or device).

        Fields added after runs were first saved (`_ADDED_LATER`) are left out while they hold
        their default, which reproduces the numbers of before they existed: a run trained
        then keeps its settings hash (run name, sweep group) and is still "up to date". Any
        other value is in, so two different settings never share a hash."""
        d = asdict(self)
        for k in ("name", "out", "device"):
            d.pop(k)
        for k, default in _ADDED_LATER.items():
            if d[k] == default and type(d[k]) is type(default):
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


# Issue 10's fields and their defaults (today's numbers), see HeadConfig.settings.
_ADDED_LATER: dict[str, Any] = {
    "label_smoothing_form": "symmetric", "threshold_grid": DEFAULT_THRESHOLD_GRID, "fixed_threshold": 0.5,
    "calibrate": "none", "optimizer": "adamw", "momentum": _SGD_MOMENTUM, "plateau_factor": 0.5,
    "plateau_patience": None, "min_lr": 0.0,
    "modality_dropout": 0.0}  # issue 12


def _number(flag: str, v: Any) -> float:
    """A float setting as float (a sweep's `--set min_lr=0` gives the int 0: same hash as 0.0)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{flag} must be a number, got {v!r}")
    return float(v)


_PART_MAX, _FEATS_MAX = 40, 120  # name parts are cut so a run folder name stays < 200 characters


def _safe(s: str, n: int) -> str:
    """Filesystem-safe (letters, digits, _.+-; anything else becomes '_') and at most n characters."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", s)[:n]
