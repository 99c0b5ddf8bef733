"""Head-training flags that `train-head` and `finetune` share: one definition, one help text."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from train_heads.config import SCHEDULERS
from train_heads.losses import SMOOTHING_FORMS
from train_heads.optimizers import OPTIMIZERS
from train_heads.thresholds import THRESHOLDS

LabelSmoothingForm = Annotated[str, typer.Option(help="Smoothed targets: symmetric = y(1-e) + e/2 (0.95/0.05 at e=0.1), paper000 = y(1-e) + (1-y)e (0.9/0.1, paper 000). One of " + ", ".join(SMOOTHING_FORMS) + ".")]
Threshold = Annotated[str, typer.Option(help="Threshold strategy tuned on dev: " + ", ".join(sorted(THRESHOLDS)) + " (fixed: --fixed-threshold for every genre).")]
ThresholdGrid = Annotated[str, typer.Option(help="LO:HI:STEP grid that global and per_class search on dev, both ends included (paper 001: 0.1:0.9:0.02).")]
FixedThreshold = Annotated[float, typer.Option(help="The threshold of --threshold fixed.")]
Optimizer = Annotated[str, typer.Option(help="Optimiser: " + ", ".join(OPTIMIZERS) + " (papers 000 and 001: adamw).")]
WarmupEpochs = Annotated[float, typer.Option(help="Linear warmup length in epochs.")]
Scheduler = Annotated[str, typer.Option(help="Per-epoch lr schedule after warmup: " + ", ".join(SCHEDULERS) + " (plateau: ReduceLROnPlateau on dev macro-F1).")]
PlateauFactor = Annotated[float, typer.Option(help="plateau: lr x this factor on a dev plateau (paper 000: 0.2, paper 001: 0.5).")]
PlateauPatience = Annotated[Optional[int], typer.Option(help="plateau: epochs without dev gain before the lr is cut (paper 000: 2, paper 001: 7). Default max(1, --patience // 3), printed.")]
MinLr = Annotated[float, typer.Option(help="Lowest lr of plateau; the end lr of cosine (paper 001: 1e-6).")]
GradClip = Annotated[float, typer.Option(help="Max gradient norm (0: off).")]
MinDelta = Annotated[float, typer.Option(help="Smallest dev macro-F1 gain that counts.")]
Patience = Annotated[int, typer.Option(help="Early-stopping patience (epochs) on dev macro-F1.")]
