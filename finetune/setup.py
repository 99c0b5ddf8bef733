"""Build what a fine-tuning run trains: backbones with their plans and inputs, the head.

Each backbone is an `ENCODERS` entry built exactly as `extract` builds it (same weights,
options and state dict), cut into its blocks (Encoder.trunk). Its input mode follows from
how much trains and whether anything augments its input (finetune/data.py); the caches a
mode needs are made by `extract`'s own `run_extract`, so they are normal hashed caches that
a second run (or `train-head`) reuses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from extract.encoders import Encoder, create_encoder
from extract.records import Dataset, is_blank
from extract.run import ExtractConfig, run_extract
from finetune.augment import augments_input, build_image_train_transform, parse_augment, summary
from finetune.config import BackboneSpec, FinetuneConfig
from finetune.data import Stored, load_stored
from finetune.freeze import BlockPlan, make_plan


def _same(x: Any) -> Any:  # a text's "preprocessing": the tokenizer runs in collate
    return x


@dataclass
class Built:
    plans: list[BlockPlan]
    stored: dict[str, Stored]  # backbones in features / prefix mode
    preps_train: dict[str, tuple[str, str, Any]] = field(default_factory=dict)  # raw mode, training
    preps_eval: dict[str, tuple[str, str, Any]] = field(default_factory=dict)  # raw mode, evaluation
    notes: list[str] = field(default_factory=list)  # decisions taken for the user (printed)
    caches: dict[str, str] = field(default_factory=dict)  # backbone -> cache it read (features/prefix)


def check_modality(ds: Dataset, name: str, enc: Encoder, spec: BackboneSpec) -> None:
    """A backbone whose modality the data set lacks is one line, before any model is built."""
    if enc.modality == "image" and not any(r.image is not None for r in ds.records):
        raise ValueError(f"backbone {name} ({enc.name}) reads posters, but data set {ds.name!r} has no images")
    if enc.modality == "text" and not any(not is_blank(r.texts.get(spec.text_field, "")) for r in ds.records):
        raise ValueError(f"backbone {name} ({enc.name}) reads text field {spec.text_field!r}, which no record of "
                         f"{ds.name!r} has; it has {sorted({k for r in ds.records for k in r.texts})}")


def build_backbones(cfg: FinetuneConfig, ds: Dataset, device: torch.device, progress: bool = True) -> Built:
    aug = parse_augment(cfg.augment)
    built = Built([], {})
    if augments_input(aug):
        built.notes.append(f"poster augmentation in training: {summary(aug)}")
    ids = [r.id for r in ds.records]
    for name, spec in sorted(cfg.backbones.items()):
        enc = create_encoder(spec.encoder, weights=spec.weights, options=spec.options, state_dict=spec.state_dict)
        check_modality(ds, name, enc, spec)
        if enc.needs_fit:  # vocabularies (lstm, tfidf) from the train split only
            enc.fit([r.texts.get(spec.text_field, "") for r in ds.records if r.split == "train"])
        enc.build(device)
        plan = make_plan(name, enc, enc.trunk(), spec.unfreeze)
        changes_input = (augments_input(aug) if enc.modality == "image" else cfg.token_dropout > 0)
        if not plan.trains and not changes_input:
            plan.mode = "features"
        elif plan.k > 0 and not changes_input and cfg.cached_prefix == "auto":
            plan.mode = "prefix"
        else:
            plan.mode = "raw"
            if plan.k > 0 and changes_input and cfg.cached_prefix == "auto":
                what = "augmentation" if enc.modality == "image" else "token dropout"
                built.notes.append(f"{name}: {what} changes the input every epoch, so the frozen prefix "
                                   "cannot be cached; the full backbone runs every step")
        if plan.mode == "raw":
            if enc.modality == "image":
                train_prep = enc.preprocess
                if augments_input(aug):
                    if not hasattr(enc, "image_preprocess"):
                        raise ValueError(f"--augment: encoder {enc.name!r} does not expose its poster preprocessing; "
                                         "use --augment none with it")
                    train_prep = build_image_train_transform(enc.image_preprocess(), aug)
                built.preps_train[name] = ("image", "", train_prep)
                built.preps_eval[name] = ("image", "", enc.preprocess)
            else:
                built.preps_train[name] = built.preps_eval[name] = ("text", spec.text_field, _same)
        else:
            upto = f"last:{plan.n - plan.k}" if plan.mode == "prefix" else None
            path = _extract(cfg, ds, spec, upto, progress)
            built.stored[name] = load_stored(path, ids, prefix=plan.mode == "prefix")
            built.caches[name] = path
        built.plans.append(plan)
    return built


def _extract(cfg: FinetuneConfig, ds: Dataset, spec: BackboneSpec, upto: str | None, progress: bool) -> str:
    """A normal extract cache (float32) of the backbone's pooled features, or with `upto` of
    the activations entering its first trainable block; reused when it exists."""
    ecfg = ExtractConfig(dataset=cfg.dataset, encoder=spec.encoder, weights=spec.weights, options=spec.options,
                         state_dict=spec.state_dict, text_field=spec.text_field, out=cfg.cache_dir,
                         workers=cfg.workers, device=cfg.head.device, dtype="float32", upto=upto,
                         command=f"finetune (cached {'prefix ' + upto if upto else 'frozen features'})")
    res = run_extract(ecfg, dataset=ds, progress=progress)
    print(f"{'reused' if res.skipped else 'wrote'} {res.path}", flush=True)
    return str(res.path)
