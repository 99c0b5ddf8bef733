"""ImageNet CNN encoders from torchvision (`resnet18`, `resnet50`) and the shared CNN plumbing.

Features are the penultimate, globally average-pooled activations (ResNet-18: 512-d,
ResNet-50: 2048-d; He et al. 2016, arXiv:1512.03385). With `tokens=True` the final conv
map (B, C, 7, 7) is flattened to (B, 49, C) with an all-true mask.

`ImagePreprocess` and `ConvNetEncoder` are shared with the EfficientNet-Lite encoder in
offline.py: one resize -> normalize pipeline, one channels_last forward.

Option `-o resize=crop|squash|pad` (every image encoder; extract.images.square_transform):
how the poster becomes the network's square. `squash` (default, picked by dev macro-F1 on
the real subset: extract.images.DEFAULT_RESIZE) = resize to crop x crop ignoring the aspect
ratio, as papers 000 and 001 do (Sec. 4.2); `crop` = resize the shorter side, centre crop
(ImageNet eval; the rule before this option); `pad` = letterbox the whole poster, the band
filled with the normalisation mean.

Weights: a torchvision weight enum name ("IMAGENET1K_V1", "IMAGENET1K_V2", "DEFAULT";
downloaded by torchvision), a local .pth state dict of the full torchvision model, or
"random". The preprocessing follows the weights: an enum brings its own resize/crop/mean/std
(IMAGENET1K_V2 resizes to 232), anything else uses resize 256, crop 224, ImageNet mean/std.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from extract.encoders.base import EncodeOutput, Encoder, register_encoder
from extract.images import DEFAULT_RESIZE, square_transform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocess:
    """Eval-time preprocessing: fit the poster into crop x crop (`resize_mode`), normalize."""

    resize: int  # shorter side after resizing, pixels (read by resize_mode "crop" only)
    crop: int  # side of the square fed to the network
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    interpolation: str = "bilinear"  # "bilinear" | "bicubic"
    resize_mode: str = DEFAULT_RESIZE  # "crop" | "squash" | "pad" (extract.images.square_transform)

    def build(self) -> Any:
        """The torchvision transform: PIL RGB image -> float tensor (3, crop, crop)."""
        return square_transform(self.resize_mode, self.crop, self.resize, self.mean, self.std,
                                self.interpolation)

    def info(self) -> dict[str, Any]:
        """What the cache's `preprocess` attr records (and the settings hash covers)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        if self.resize_mode == "pad":
            d["pad_fill"] = "normalisation mean (0 after normalize)"
        return d


def load_weights_file(module: torch.nn.Module, path: str | Path, encoder: str,
                      unused_prefixes: tuple[str, ...] = ()) -> None:
    """Load a local weights file by the --state-dict rules (state_dict.py): prefixes mapped, a
    differing unused classifier ignored with a note, anything else refused (no partial load)."""
    from extract.encoders.state_dict import load_mapped

    load_mapped(module, path, f"weights file {path}", encoder, unused_prefixes)


def looks_like_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or weights.endswith((".pth", ".pt", ".bin", ".safetensors"))


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm2d into the Conv2d registered just before it (in place).

    Valid for networks whose forward applies each such BN directly to that conv's output,
    as ResNet and EfficientNet(-Lite) do for every (conv, bn) sibling pair.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    for parent in net.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d) \
                    and conv.out_channels == bn.num_features:
                conv.weight, conv.bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
                parent._modules[b] = torch.nn.Identity()
    return net


class ConvNetEncoder(Encoder):
    """A CNN whose last conv map is average-pooled into the features.

    Subclasses set `feature_dim` and implement `_build_model()` (weights loaded, eval mode not
    needed) and `_feature_map(x)` -> (B, C, h, w), and `image_preprocess()`.
    The attribute `model` is the module whose `state_dict()` the `state_dict=` file must match.
    """

    modality: ClassVar[str] = "image"
    feature_dim: ClassVar[int]
    defaults: ClassVar[dict[str, Any]] = {
        "fold_bn": True,  # BN folded into convs for inference
        "resize": DEFAULT_RESIZE,  # crop | squash | pad: module docstring
    }

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.model: torch.nn.Module | None = None
        self._net: torch.nn.Module | None = None  # what encode() runs: model, BN folded
        self._transform: Any = None  # built lazily in the worker that calls preprocess()

    # ---- to implement -----------------------------------------------------------------
    def image_preprocess(self) -> ImagePreprocess:
        raise NotImplementedError

    def _build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def _feature_map(self, m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) final feature map of network m (self.model or its BN-folded copy)."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.feature_dim

    def load(self, device: torch.device) -> None:
        model = self._build_model()
        self._load_state_dict(model)
        # channels_last: faster convolutions with oneDNN on CPU and with cuDNN on GPU.
        self.model = model.eval().to(device, memory_format=torch.channels_last)
        # Inference copy with BatchNorm folded into the preceding convolution: one pass less
        # over every activation (1.3x on a 2-core CPU); features agree to ~1e-5 (tested).
        # `self.model` stays unfolded so state dicts keep their keys.
        self._net = fold_batchnorm(copy.deepcopy(self.model)) if self.options["fold_bn"] else self.model
        self.device = device

    def preprocess(self, raw: Any) -> torch.Tensor:
        if self._transform is None:
            self._transform = self.image_preprocess().build()
        return self._transform(raw.convert("RGB"))  # (3, crop, crop)

    def encode(self, batch: torch.Tensor, tokens: bool = False) -> EncodeOutput:
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call load(device) before encode()")
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        fmap = self._feature_map(self._net, x)  # (B, C, h, w)
        feats = fmap.float().mean(dim=(2, 3))  # (B, C): global average pool
        out = EncodeOutput(features=feats.cpu())
        if tokens:
            tok = fmap.float().flatten(2).transpose(1, 2)  # (B, h*w, C)
            out.tokens = tok.contiguous().cpu()
            out.token_mask = torch.ones(tok.shape[:2], dtype=torch.bool)  # (B, h*w)
        return out

    def preprocess_info(self) -> dict[str, Any]:
        return self.image_preprocess().info()

    def trunk(self) -> Any:
        """The blocks of `self.model` (extract/encoders/trunk_cnn.py), to train. encode() runs the
        live model from now on: the BN-folded copy made at load() would go stale once they train."""
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        self._net = self.model
        return self._make_trunk(self.model)

    def _make_trunk(self, model: torch.nn.Module) -> Any:
        raise ValueError(f"encoder {self.name!r} cannot be fine-tuned end to end (it has no block list)")



class _TorchvisionResNet(ConvNetEncoder):
    arch: ClassVar[str]
    default_weights: ClassVar[str] = "IMAGENET1K_V1"
    unused_prefixes: ClassVar[tuple[str, ...]] = ("fc.",)  # the ImageNet classifier; features are before it
    needs_internet: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._weights_enum()  # validate early: unknown names fail before any work

    def _weights_enum(self) -> Any:
        """The torchvision weights enum member, or None for "random" / a local file."""
        if self.weights == "random":
            return None
        if Path(self.weights).is_file():
            return None
        if looks_like_path(self.weights):
            raise FileNotFoundError(f"weights file {self.weights} for encoder {self.name!r} does not exist")
        from torchvision.models import get_model_weights

        enum = get_model_weights(self.arch)
        names = [w.name for w in enum] + ["DEFAULT"]
        if self.weights not in names:
            raise ValueError(f"encoder {self.name!r}: unknown weights {self.weights!r}; choose from "
                             f"{names}, 'random', or a local .pth file")
        return enum[self.weights]

    def image_preprocess(self) -> ImagePreprocess:
        w = self._weights_enum()
        mode = self.options["resize"]
        if w is None:
            return ImagePreprocess(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize_mode=mode)
        t = w.transforms()  # torchvision's own eval transform for these weights (no download)
        return ImagePreprocess(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]),
                               mean=tuple(t.mean), std=tuple(t.std), interpolation=t.interpolation.value,
                               resize_mode=mode)

    def weights_tag(self) -> str:
        w = self._weights_enum()
        return f"torchvision:{self.arch}.{w.name}" if w is not None else super().weights_tag()

    def _build_model(self) -> torch.nn.Module:
        from torchvision.models import get_model

        w = self._weights_enum()
        model = get_model(self.arch, weights=w)
        if w is None and self.weights != "random":
            load_weights_file(model, self.weights, self.name, self.unused_prefixes)
        return model

    def _make_trunk(self, model: torch.nn.Module) -> Any:
        from extract.encoders.trunk_cnn import ResNetTrunk

        return ResNetTrunk(model)

    def _feature_map(self, m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))  # (B, C, H/32, W/32)


@register_encoder
class ResNet18Encoder(_TorchvisionResNet):
    name: ClassVar[str] = "resnet18"
    arch: ClassVar[str] = "resnet18"
    feature_dim: ClassVar[int] = 512


@register_encoder
class ResNet50Encoder(_TorchvisionResNet):
    name: ClassVar[str] = "resnet50"
    arch: ClassVar[str] = "resnet50"
    feature_dim: ClassVar[int] = 2048
