"""Block view of the ImageNet CNNs: torchvision ResNets (stem conv1/bn1, blocks = the four
stages layer1..layer4, He et al. 2016) and EfficientNet-Lite (stem conv + BN, blocks = the
seven stage groups of MBConv blocks, each block keeping the drop-connect rate the library's
`extract_features` gives its global index, tail = head conv + BN; Tan & Le 2019). Pooling is
the global average of the last map, as the encoders' features.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from extract.encoders.trunk import State, Trunk


class ResNetTrunk(Trunk):
    spatial = True

    def __init__(self, m: nn.Module) -> None:
        super().__init__([m.conv1, m.bn1], [m.layer1, m.layer2, m.layer3, m.layer4], [])
        self.relu, self.maxpool = m.relu, m.maxpool

    def embed(self, batch: Any) -> State:
        x = batch.contiguous(memory_format=torch.channels_last)  # as encode(): faster convolutions
        return {"h": self.maxpool(self.relu(self.stem[1](self.stem[0](x))))}

    def block(self, i: int, state: State) -> State:
        return {"h": self.blocks[i](state["h"])}

    def pool(self, state: State) -> torch.Tensor:
        return state["h"].float().mean(dim=(2, 3))


def efficientnet_stages(m: nn.Module) -> list[list[int]]:
    """Indices into `m._blocks` of each stage: one stage per entry of the model's block args,
    with the repeat count the library's EfficientNet.__init__ gives it (round_repeats, or the
    raw count for the first and last stage when fix_head_stem: the Lite models)."""
    from efficientnet_lite_pytorch.utils import round_repeats

    fixed, n_args = m._fix_head_stem, len(m._blocks_args)
    sizes = [a.num_repeat if fixed and i in (0, n_args - 1) else round_repeats(a.num_repeat, m._global_params)
             for i, a in enumerate(m._blocks_args)]
    if sum(sizes) != len(m._blocks):
        raise ValueError(f"efficientnet: block args give {sum(sizes)} blocks, the model has {len(m._blocks)}")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [list(range(s, s + n)) for s, n in zip(starts, sizes)]


class EfficientNetTrunk(Trunk):
    """Blocks = the stages of the model's block args (7 for Lite0: 1, 2, 2, 3, 3, 4, 1 MBConv
    blocks). Block j of the network keeps the drop-connect rate extract_features gives it,
    rate * j / n_blocks with j the GLOBAL index (drop connect acts in training mode only)."""

    spatial = True

    def __init__(self, m: nn.Module) -> None:
        groups = efficientnet_stages(m)
        super().__init__([m._conv_stem, m._bn0], [nn.ModuleList([m._blocks[i] for i in g]) for g in groups],
                         [m._conv_head, m._bn1])
        self.act = m._swish
        rate, n = m._global_params.drop_connect_rate, len(m._blocks)
        self.rates = [[rate * float(i) / n if rate else rate for i in g] for g in groups]

    def embed(self, batch: Any) -> State:
        x = batch.contiguous(memory_format=torch.channels_last)  # as encode(): faster convolutions
        return {"h": self.act(self.stem[1](self.stem[0](x)))}

    def block(self, i: int, state: State) -> State:
        x = state["h"]
        for blk, rate in zip(self.blocks[i], self.rates[i]):
            x = blk(x, drop_connect_rate=rate)
        return {"h": x}

    def pool(self, state: State) -> torch.Tensor:
        return self.act(self.tail[1](self.tail[0](state["h"]))).float().mean(dim=(2, 3))
