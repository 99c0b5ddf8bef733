"""`cnn`: paper 001's custom poster CNN (Sec. 4.3.2), trained from scratch end to end by `finetune`.

    poster (3, S, S) -> [conv -> BatchNorm -> ReLU -> 2x2 max pool] x 4 -> global average pool -> (B, 512)

As the paper writes it: four conv layers of 64 -> 128 -> 256 -> 512 channels (`channels`),
7x7 kernels in the first layer and 3x3 after, each followed by batch normalisation, ReLU
and 2x2 max pooling (Eq. 3.15), taking 224x224 posters to a 7x7 map that global average
pooling turns into the 512-d features. The paper's dropout 0.7 and linear classifier come
after the features: they are the head's (`finetune` / `train-head` head options).

Where the paper is silent, our choices: 224 -> 7 is a factor 32, and four 2x2 pools give 16,
so the first conv has stride 2 (as ResNet's 7x7 stem); padding keeps the size otherwise (3
for 7x7, 1 for 3x3); the convs have no bias (BatchNorm follows each). That is 1.56M
parameters (hand count in the tests); the paper's Table 4.4 lists 1.7M for the whole model.
Input: the poster squashed to `size` x `size` (224, Sec. 4.2.2: "all images are resized to
224x224"), ImageNet mean/std as the paper normalises every image; `-o resize=crop` resizes
the shorter side to `size` and centre-crops, `pad` letterboxes. `channels` sets the number of
blocks and their widths (e.g. [8, 16, 32] for a quick run); BatchNorm is folded into the convs
for extraction (`fold_bn`, as the other CNNs; features agree with the unfolded trunk to ~1e-5).
Paper 003's End2End CNN (GMU, Sec. 3.3: five 16-channel conv layers, 5x5 then 3x3 filters,
2x2 pools, on 160x256 posters) is the other from-scratch poster baseline of the papers.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from extract.encoders.base import register_encoder
from extract.encoders.scratch import check_int, check_random_weights
from extract.encoders.torchvision_cnn import IMAGENET_MEAN, IMAGENET_STD, ConvNetEncoder, ImagePreprocess
from extract.encoders.trunk import State, Trunk


def conv_block(c_in: int, c_out: int, first: bool) -> nn.Sequential:
    """conv (7x7 stride 2 first, else 3x3) -> BN -> ReLU -> 2x2 max pool; conv and BN are
    siblings, so fold_batchnorm folds them."""
    k, stride = (7, 2) if first else (3, 1)
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class PosterCNN(nn.Module):
    """The module `--state-dict` files hold: `blocks.<i>.0` conv, `blocks.<i>.1` BatchNorm."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        widths = [3, *channels]
        self.blocks = nn.Sequential(*(conv_block(widths[i], widths[i + 1], i == 0) for i in range(len(channels))))


class CNNTrunk(Trunk):
    """No stem, blocks = the conv blocks, no tail (pooling has no parameters)."""

    spatial = True

    def __init__(self, net: PosterCNN) -> None:
        super().__init__([], list(net.blocks), [])

    def embed(self, batch: Any) -> State:
        # channels_last as ConvNetEncoder.encode: the same conv kernels, so the same numbers
        return {"h": batch.contiguous(memory_format=torch.channels_last)}

    def block(self, i: int, state: State) -> State:
        return {"h": self.blocks[i](state["h"])}

    def pool(self, state: State) -> torch.Tensor:
        return state["h"].float().mean(dim=(2, 3))  # global average pool, as encode()


@register_encoder
class PosterCNNEncoder(ConvNetEncoder):
    name: ClassVar[str] = "cnn"
    defaults: ClassVar[dict[str, Any]] = {**ConvNetEncoder.defaults, "size": 224, "channels": [64, 128, 256, 512]}
    from_scratch: ClassVar[bool] = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        check_random_weights(self.name, self.weights)
        o = self.options
        check_int(self.name, "size", o["size"], 1)
        ch = o["channels"]
        if not isinstance(ch, (list, tuple)) or not ch or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in ch):
            raise ValueError(f"encoder {self.name!r}: option channels must be a list of positive integers "
                             f"(one conv block each), got {ch!r}")
        o["channels"] = list(ch)  # JSON-stable in describe()
        if o["size"] < 2 ** (len(ch) + 1):
            raise ValueError(f"encoder {self.name!r}: size {o['size']} is too small for {len(ch)} blocks "
                             f"(each halves it, the first twice): use size >= {2 ** (len(ch) + 1)}")

    @property
    def dim(self) -> int:
        return self.options["channels"][-1]

    def image_preprocess(self) -> ImagePreprocess:
        s = self.options["size"]
        return ImagePreprocess(resize=s, crop=s, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                               resize_mode=self.options["resize"])

    def _build_model(self) -> torch.nn.Module:
        return PosterCNN(self.options["channels"])

    def _feature_map(self, m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m.blocks(x)  # (B, C, S/32, S/32) with four blocks

    def trunk(self) -> Trunk:
        """The blocks of `self.model`, to train. encode() runs the live model from now on: the
        BN-folded copy made at load() would go stale as soon as the trunk's weights change."""
        if self.model is None:
            raise ValueError(f"encoder {self.name!r}: call build(device) before trunk()")
        self._net = self.model
        return CNNTrunk(self.model)
