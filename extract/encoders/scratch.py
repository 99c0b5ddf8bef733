"""Encoders trained from scratch, only end to end: `lstm` (scratch_text.py), `cnn` (scratch_image.py).

They have no pretrained weights (`Encoder.from_scratch`): `finetune` builds them with a seeded
random init ("random", the only weights value) and trains them whole with the head; it exports
the trained model's state dict, which `extract --state-dict` and `predict` load. Features of
the random init mean nothing, so `extract` without a state dict is refused
(`check_extractable`); `finetune` (which needs that random init) is not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

RANDOM = "random"


def check_extractable(encoder: Any, state_dict: str | Path | None) -> None:
    """Refuse `extract` of a from-scratch encoder without its trained `--state-dict` (one line).

    `encoder` is an Encoder class or instance (anything with `name` and `from_scratch`), so the
    check can run on the config, before any data is read. Only `extract` calls it: `finetune`
    builds these encoders without a state dict on purpose."""
    if getattr(encoder, "from_scratch", False) and state_dict is None:
        raise ValueError(f"encoder {encoder.name!r} is trained from scratch: its random init gives meaningless "
                         "features; train it with `finetune` and pass its exported --state-dict")


def check_random_weights(name: str, weights: str) -> None:
    """A from-scratch encoder has no weights to name: only "random" (a trained model comes as
    --state-dict)."""
    if weights != RANDOM:
        raise ValueError(f"encoder {name!r} has no pretrained weights: --weights must be {RANDOM!r} (its seeded "
                         f"init), got {weights!r}; a model trained by `finetune` is loaded with --state-dict")


def check_int(name: str, key: str, value: Any, low: int) -> int:
    """An integer option >= low, else one line naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"encoder {name!r}: option {key} must be an integer >= {low}, got {value!r}")
    return value


def check_rate(name: str, key: str, value: Any) -> float:
    """A dropout rate in [0, 1), else one line naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"encoder {name!r}: option {key} must be a number in [0, 1), got {value!r}")
    return float(value)
