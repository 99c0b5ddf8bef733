"""CLIP image and text towers from open_clip: `clip-image` and `clip-text`.

CLIP (Radford et al. 2021, arXiv:2103.00020) embeds posters and plots into one space;
the user-facing `--encoder clip --modality image|text` resolves to these two names.

Weights: an open_clip pretrained tag for the model (default "openai"; downloaded by
open_clip), a local open_clip checkpoint file, or "random" (no weights; tests). A tag that
was trained with QuickGELU (e.g. ViT-B-32 "openai") builds the model with QuickGELU, so the
numbers match the checkpoint instead of only warning about the mismatch.

Options (both towers):
- model: open_clip architecture name (default "ViT-B-32").
- normalize: L2-normalize the features (default False: raw projected embeddings; heads
  that want cosine geometry normalize themselves, and raw norms keep more information).
- model_cfg: dict deep-merged over the architecture's config (embed_dim, vision_cfg,
  text_cfg), e.g. a tiny model for tests.
Image only:
- resize: "squash" (default, extract.images.DEFAULT_RESIZE: image_size x image_size ignoring
  the aspect ratio, as papers 000/001 do), "crop" (open_clip's own eval transform: shorter side
  to image_size + centre crop; the rule before this option) or "pad" (letterbox, band =
  normalisation mean); extract.images.square_transform.
Text only:
- long_text: "truncate" (default; CLIP's 77-token context, the EOT token kept last) or
  "chunk": the BPE tokens are split into windows of 75 wrapped in SOT/EOT, each window is
  encoded and the text's feature is the plain mean of its window embeddings (before the
  optional normalize), so a text that fits one window gets exactly its truncate feature.
  Token outputs need "truncate" (one fixed-length sequence per text).

Tokens: image -> ViT patch states after ln_post, before the projection (B, grid*grid, width),
all-true mask; text -> per-position states after ln_final (B, 77, width) with the mask of
real tokens (SOT..EOT).

The attribute `model` is the module whose `state_dict()` a `state_dict=` file must match:
the visual tower for clip-image, the CLIP model without its visual tower for clip-text.
A full open_clip checkpoint goes through `weights=` instead.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from extract.encoders.base import EncodeOutput, Encoder, register_encoder
from extract.encoders.torchvision_cnn import looks_like_path
from extract.images import DEFAULT_RESIZE, square_transform

LONG_TEXT = ("truncate", "chunk")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class _OpenClipEncoder(Encoder):
    defaults: ClassVar[dict[str, Any]] = {"model": "ViT-B-32", "normalize": False, "model_cfg": None}
    default_weights: ClassVar[str] = "openai"
    needs_internet: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        import open_clip

        name = self.options["model"]
        base_cfg = open_clip.get_model_config(name)
        if base_cfg is None:
            raise ValueError(f"encoder {self.name!r}: unknown open_clip model {name!r}; "
                             f"choose from open_clip.list_models(), e.g. ViT-B-32, ViT-B-16, ViT-L-14")
        self.model_cfg = _deep_merge(base_cfg, self.options["model_cfg"] or {})
        self._tag_cfg: dict[str, Any] = {}
        if self.weights != "random" and not Path(self.weights).is_file():
            if looks_like_path(self.weights):
                raise FileNotFoundError(f"weights file {self.weights} for encoder {self.name!r} does not exist")
            self._tag_cfg = open_clip.get_pretrained_cfg(name, self.weights)
            if not self._tag_cfg:
                raise ValueError(f"encoder {self.name!r}: {self.weights!r} is not a pretrained tag of {name}; "
                                 f"choose from {open_clip.list_pretrained_tags_by_model(name)}, "
                                 f"'random' or a local checkpoint file")
        self.model: torch.nn.Module | None = None

    @property
    def quick_gelu(self) -> bool:
        return bool(self.model_cfg.get("quick_gelu", False) or self._tag_cfg.get("quick_gelu", False))

    @property
    def dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def _create_clip(self) -> torch.nn.Module:
        import open_clip

        overrides = {k: copy.deepcopy(self.model_cfg[k]) for k in (self.options["model_cfg"] or {})}
        return open_clip.create_model(
            self.options["model"], pretrained=None if self.weights == "random" else self.weights,
            force_quick_gelu=self.quick_gelu, **overrides)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["quick_gelu"] = self.quick_gelu  # changes the activations, hence the numbers
        return d

    def _finish(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        if self.options["normalize"]:
            features = F.normalize(features, dim=-1)
        return features.cpu()



@register_encoder
class ClipImageEncoder(_OpenClipEncoder):
    name: ClassVar[str] = "clip-image"
    modality: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {**_OpenClipEncoder.defaults, "resize": DEFAULT_RESIZE}

    def _preprocess_cfg(self) -> dict[str, Any]:
        from dataclasses import asdict

        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        cfg = merge_preprocess_dict(asdict(PreprocessCfg()), self._tag_cfg)  # tag mean/std/resize
        cfg["size"] = self.model_cfg["vision_cfg"].get("image_size", cfg["size"])
        return cfg

    def preprocess_info(self) -> dict[str, Any]:
        cfg = self._preprocess_cfg()
        info = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
        if self.options["resize"] != "crop":  # open_clip's resize_mode / fill_color are not used
            info.pop("fill_color", None)
            info["resize_mode"] = self.options["resize"]
            if self.options["resize"] == "pad":
                info["pad_fill"] = "normalisation mean (0 after normalize)"
        return info

    def preprocess(self, raw: Any) -> torch.Tensor:
        transform = self.__dict__.get("_transform")
        if transform is None:
            from open_clip.transform import PreprocessCfg, image_transform_v2

            cfg = self._preprocess_cfg()
            if self.options["resize"] == "crop":  # open_clip's own eval transform, as before
                transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
            else:
                size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
                transform = square_transform(self.options["resize"], size, size, tuple(cfg["mean"]),
                                             tuple(cfg["std"]), cfg["interpolation"])
            self._transform = transform
        return transform(raw.convert("RGB"))  # (3, size, size)

    def load(self, device: torch.device) -> None:
        visual = self._create_clip().visual  # the text tower is dropped with the rest
        self._load_state_dict(visual)
        self.model = visual.eval().to(device)
        self.device = device

    def encode(self, batch: torch.Tensor, tokens: bool = False) -> EncodeOutput:
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call load(device) before encode()")
        x = batch.to(self.device, non_blocking=True)  # (B, 3, H, W)
        if not tokens:
            return EncodeOutput(features=self._finish(self.model(x)))
        if not hasattr(self.model, "output_tokens"):
            raise ValueError(f"encoder {self.name!r}: model {self.options['model']} has no patch-token "
                             f"output (only open_clip ViTs do); drop --tokens")
        self.model.output_tokens = True
        try:
            pooled, tok = self.model(x)  # (B, D), (B, grid*grid, width)
        finally:
            self.model.output_tokens = False
        tok = tok.float().cpu()
        return EncodeOutput(features=self._finish(pooled), tokens=tok,
                            token_mask=torch.ones(tok.shape[:2], dtype=torch.bool))

    def trunk(self) -> Any:
        """The ViT's residual blocks (extract/encoders/trunk_clip.py), sharing `self.model`."""
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        from extract.encoders.trunk_clip import ClipImageTrunk

        return ClipImageTrunk(self.model, self.options["normalize"])


@register_encoder
class ClipTextEncoder(_OpenClipEncoder):
    name: ClassVar[str] = "clip-text"
    modality: ClassVar[str] = "text"
    defaults: ClassVar[dict[str, Any]] = {**_OpenClipEncoder.defaults, "long_text": "truncate"}

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.options["long_text"] not in LONG_TEXT:
            raise ValueError(f"encoder {self.name!r}: long_text must be one of {list(LONG_TEXT)}, "
                             f"got {self.options['long_text']!r}")
        self.tokenizer: Any = None

    @property
    def context_length(self) -> int:
        return int(self.model_cfg["text_cfg"].get("context_length", 77))

    def _get_tokenizer(self) -> Any:
        if self.tokenizer is None:
            import open_clip

            self.tokenizer = open_clip.get_tokenizer(self.options["model"], context_length=self.context_length)
            if self.options["long_text"] == "chunk" and not hasattr(self.tokenizer, "sot_token_id"):
                raise ValueError(f"encoder {self.name!r}: long_text 'chunk' needs CLIP's BPE tokenizer; "
                                 f"{self.options['model']} uses {type(self.tokenizer).__name__}")
        return self.tokenizer

    def preprocess_info(self) -> dict[str, Any]:
        return {"tokenizer": f"open_clip.get_tokenizer({self.options['model']})",
                "context_length": self.context_length, "long_text": self.options["long_text"]}

    def preprocess(self, raw: str) -> str:
        return raw

    def collate(self, items: list[str]) -> dict[str, torch.Tensor]:
        """-> ids (K, context) and owner (K,): the text each row belongs to (K = B unless chunking)."""
        tok = self._get_tokenizer()
        if self.options["long_text"] == "truncate":
            ids = tok(list(items), context_length=self.context_length)  # (B, context)
            return {"ids": ids, "owner": torch.arange(len(items))}
        width = self.context_length - 2  # room left by SOT and EOT
        rows, owner = [], []
        for i, text in enumerate(items):
            bpe = tok.encode(text)
            for start in range(0, max(len(bpe), 1), width):
                rows.append([tok.sot_token_id, *bpe[start:start + width], tok.eot_token_id])
                owner.append(i)
        ids = torch.zeros(len(rows), self.context_length, dtype=torch.long)  # 0 = pad
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
        return {"ids": ids, "owner": torch.tensor(owner)}

    def load(self, device: torch.device) -> None:
        model = self._create_clip()
        model.visual = None  # the image tower is not needed (and not in the state dict)
        self._load_state_dict(model)
        self.model = model.eval().to(device)
        self._get_tokenizer()
        self.device = device

    def _forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> pooled (K, D), token states (K, context, width)."""
        from open_clip.transformer import text_global_pool

        m = self.model
        if getattr(m, "text", None) is not None:  # CustomTextCLIP: the text tower is a module
            m.text.output_tokens = True
            try:
                return m.text(ids)
            finally:
                m.text.output_tokens = False
        # Standard CLIP keeps its text tower inline; mirror CLIP.encode_text, keeping the states.
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(ids).to(cast) + m.positional_embedding.to(cast)  # (K, context, width)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))  # (K, context, width)
        pooled = text_global_pool(x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            pooled = m.text_projection(pooled) if isinstance(m.text_projection, torch.nn.Linear) \
                else pooled @ m.text_projection  # (K, D)
        return pooled, x

    def encode(self, batch: dict[str, torch.Tensor], tokens: bool = False) -> EncodeOutput:
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call load(device) before encode()")
        if tokens and self.options["long_text"] != "truncate":
            raise ValueError(f"encoder {self.name!r}: token outputs need long_text 'truncate' "
                             f"(chunking gives a variable number of windows per text)")
        ids = batch["ids"].to(self.device, non_blocking=True)  # (K, context)
        owner = batch["owner"].to(self.device, non_blocking=True)  # (K,)
        pooled, states = self._forward(ids)
        pooled = pooled.float()
        n = int(owner.max()) + 1
        if pooled.shape[0] != n:  # chunks -> mean over each text's windows
            sums = torch.zeros(n, pooled.shape[1], device=pooled.device).index_add_(0, owner, pooled)
            counts = torch.bincount(owner, minlength=n).clamp(min=1).unsqueeze(1)
            pooled = sums / counts  # (B, D)
        out = EncodeOutput(features=self._finish(pooled))
        if tokens:
            out.tokens = states.float().cpu()  # (B, context, width)
            out.token_mask = (ids != 0).cpu()  # (B, context): 0 is the pad id of CLIP's BPE tokenizer
        return out

    def trunk(self) -> Any:
        """The text transformer's residual blocks (extract/encoders/trunk_clip.py), sharing
        `self.model`. Not with long_text 'chunk': a text is several windows, one row each."""
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        if self.options["long_text"] != "truncate":
            raise ValueError(f"encoder {self.name!r}: fine-tuning needs long_text 'truncate' (one sequence "
                             f"per text), not {self.options['long_text']!r}")
        from extract.encoders.trunk_clip import ClipTextTrunk

        return ClipTextTrunk(self.model, self.options["normalize"])
