"""The `finetune` command's flag values -> validated FinetuneConfigs (one per recipe member x seed).

Everything is built and checked before any data is read or model loaded, so a typo in the
last member of a recipe fails at once. Defaults chosen for the user are printed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from extract.dataset_config import DatasetConfig
from extract.encoders import ENCODERS
from extract.run import resolve_encoder_name
from finetune.config import BackboneSpec, FinetuneConfig
from train_heads.config import HeadConfig

# FinetuneConfig fields set from the flag of the same name.
_FT_FIELDS = ("backbone_lr", "layer_decay", "unfreeze_every", "grad_accum", "grad_checkpointing", "amp",
              "channels_last", "augment", "token_dropout", "cached_prefix", "workers", "cache_dir", "export",
              "resume")
# HeadConfig fields set from the flag of the same name (head_lr -> lr, head_opt -> fusion_kw...).
_HEAD_FIELDS = ("fusion", "loss", "label_smoothing", "label_smoothing_form", "threshold", "threshold_grid",
                "fixed_threshold", "optimizer", "weight_decay", "batch_size", "max_epochs", "patience",
                "min_delta", "warmup_epochs", "scheduler", "plateau_factor", "plateau_patience", "min_lr",
                "grad_clip", "device", "out", "standardize")


def backbone(p: dict[str, Any], side: str, parse_kv: Callable, say: Callable[[str], None]) -> BackboneSpec | None:
    name = p.get(f"{side}_encoder")
    if name is None:
        return None
    name = resolve_encoder_name(name, side)  # clip -> clip-image; a text encoder as --image-encoder is refused
    unfreeze = p.get(f"{side}_unfreeze")
    if unfreeze is None:
        unfreeze = "all" if ENCODERS[name].from_scratch else "last:1"
        say(f"{side}: --{side}-unfreeze {unfreeze} (default for {name})")
    sd = p.get(f"{side}_state_dict")
    return BackboneSpec(encoder=name, weights=p.get(f"{side}_weights"),
                        options=parse_kv(p.get(f"{side}_opt"), f"--{side}-opt"),
                        state_dict=str(sd) if sd else None, unfreeze=unfreeze,
                        text_field=p.get("text_field", "plot") if side == "text" else "plot")


def build_configs(members: list[dict[str, Any]], ds_cfg: DatasetConfig, parse_kv: Callable,
                  say: Callable[[str], None] = print) -> list[FinetuneConfig]:
    out = []
    for p in members:
        backbones = {s: b for s in ("image", "text") if (b := backbone(p, s, parse_kv, say)) is not None}
        _check_head(p["fusion"], backbones)
        seeds = p.get("seed") or [0]
        for seed in seeds:
            name = p.get("name")
            if name and len(seeds) > 1:
                name = f"{name}-s{seed}"
            head = HeadConfig(features={}, fusion_kw=parse_kv(p.get("head_opt"), "--head-opt"),
                              loss_kw=parse_kv(p.get("loss_opt"), "--loss-opt"), lr=p["head_lr"], seed=seed,
                              name=name, **{k: p[k] for k in _HEAD_FIELDS if k in p})
            out.append(FinetuneConfig(dataset=ds_cfg, backbones=backbones, head=head,
                                      **{k: p[k] for k in _FT_FIELDS if k in p}))
    if len(out) > 1 and any(c.head.name for c in out) and len({c.head.name for c in out}) < len(out):
        raise ValueError("--name with a recipe of several members would give them one folder; drop --name")
    return out



def _check_head(fusion: str, backbones: dict[str, BackboneSpec]) -> None:
    from train_heads.fusion import FUSIONS, list_fusions

    if fusion not in list_fusions():
        raise ValueError(f"Unknown fusion {fusion!r}; choose from {list_fusions()}")
    need = FUSIONS[fusion].min_modalities
    if len(backbones) < need:
        raise ValueError(f"fusion {fusion!r} needs {need} backbones, got {sorted(backbones) or 'none'}; "
                         "add --image-encoder / --text-encoder, or use a one-modality head (linear, mlp)")
