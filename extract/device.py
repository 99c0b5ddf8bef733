"""`--device auto|cpu|cuda` -> torch.device, shared by `extract` and `train-head`."""
from __future__ import annotations

import torch


def pick_device(device: str) -> torch.device:
    """"auto" picks CUDA when torch sees a GPU; asking for CUDA without one is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return d
