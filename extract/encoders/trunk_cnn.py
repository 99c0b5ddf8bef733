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
        return {"h": self.maxpool(self.relu(self.stem[1](self.stem[0](batch))))}

    def block(self, i: int, state: State) -> State:
        return {"h": self.blocks[i](state["h"])}

    def pool(self, state: State) -> torch.Tensor:
        return state["h"].float().mean(dim=(2, 3))


class EfficientNetTrunk(Trunk):
    """Stage groups: consecutive MBConv blocks with the same output width (16, 24, 40, 80,
    112, 192, 320 for Lite0): 7 groups."""

    spatial = True

    def __init__(self, m: nn.Module) -> None:
        groups: list[list[int]] = []
        for idx, b in enumerate(m._blocks):
            if groups and m._blocks[groups[-1][-1]]._block_args.output_filters == b._block_args.output_filters:
                groups[-1].append(idx)
            else:
                groups.append([idx])
        super().__init__([m._conv_stem, m._bn0], [nn.ModuleList([m._blocks[i] for i in g]) for g in groups],
                         [m._conv_head, m._bn1])
        self.act = m._swish
        rate, n = m._global_params.drop_connect_rate, len(m._blocks)
        self.rates = [[rate * float(i) / n if rate else rate for i in g] for g in groups]

    def embed(self, batch: Any) -> State:
        return {"h": self.act(self.stem[1](self.stem[0](batch)))}

    def block(self, i: int, state: State) -> State:
        x = state["h"]
        for blk, rate in zip(self.blocks[i], self.rates[i]):
            x = blk(x, drop_connect_rate=rate)
        return {"h": x}

    def pool(self, state: State) -> torch.Tensor:
        return self.act(self.tail[1](self.tail[0](state["h"]))).float().mean(dim=(2, 3))
