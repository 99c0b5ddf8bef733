"""Missing modalities: dropping them in training, choosing them for evaluation.

Training (`train-head --modality-dropout p`): each row of a batch drops each of its present
modalities with probability p, exactly as a missing poster is fed (features zero, present
False, no tokens); a row that would lose every present modality keeps one of them, chosen
at random, so no row teaches the head from nothing.

Evaluation (`evaluate RUN --missing SPEC`, the protocol of Ma et al. 2022, "Are multimodal
transformers robust to missing modality?", and Lee et al. 2023, "Multimodal prompting with
missing modalities", on MM-IMDb): a ratio r of the evaluated rows lose a modality. SPEC is
`<kind>:<r>[,<r>...]` with kind = a modality name of the run (image, text, meta...), `both`
(Lee et al.'s missing-both for two modalities: r/2 of the rows lose the first modality
and another r/2 the second, disjoint) or `all` (the same for N modalities: r/N of the rows
lose each one, disjoint). Rows are picked from one seeded permutation of the evaluated rows,
the first round(r*n) of it, so for one seed a larger ratio removes a superset of rows and the
curve over r is not noise from re-drawing. Rows already missing a modality stay missing.
"""
from __future__ import annotations

import numpy as np
import torch

KINDS_SPECIAL = ("both", "all")


def drop_modalities(feats: dict[str, torch.Tensor], modalities: list[str], p: float,
                    gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A copy of a training batch with modalities dropped per row (module docstring)."""
    present = torch.stack([feats[f"{m}.present"] for m in modalities], 1)  # (B, M)
    drop = (torch.rand(present.shape, generator=gen) < p).to(present.device) & present
    lost_all = present.any(1) & ~(present & ~drop).any(1)  # rows that would keep nothing
    if lost_all.any():
        score = torch.rand(present.shape, generator=gen).to(present.device).masked_fill(~present, -1.0)
        keep = score.argmax(1)  # a random present modality per row
        rescue = torch.zeros_like(drop).scatter_(1, keep[:, None], True) & lost_all[:, None]
        drop &= ~rescue
    out = dict(feats)
    for j, m in enumerate(modalities):
        gone = drop[:, j]
        if gone.any():
            out[m] = feats[m] * (~gone)[:, None].to(feats[m].dtype)
            out[f"{m}.present"] = feats[f"{m}.present"] & ~gone
            if f"{m}.token_mask" in feats:
                out[f"{m}.token_mask"] = feats[f"{m}.token_mask"] & ~gone[:, None]
    return out


def parse_spec(spec: str, modalities: list[str]) -> tuple[str, list[float]]:
    """'text:0,0.5' -> ('text', [0.0, 0.5]); one line naming what is wrong otherwise."""
    kind, sep, ratios = spec.partition(":")
    if not sep or not kind or not ratios:
        raise ValueError(f"--missing {spec!r}: give <modality|both|all>:<ratio>[,<ratio>...], e.g. text:0.7")
    if kind not in (*modalities, *KINDS_SPECIAL):
        raise ValueError(f"--missing {spec!r}: this run has modalities {modalities}; give one of them, "
                         f"'both' or 'all'")
    if kind == "both" and len(modalities) != 2:
        raise ValueError(f"--missing {spec!r}: 'both' is for a run with two modalities (this one has "
                         f"{modalities}); use 'all' for N")
    try:
        values = [float(r) for r in ratios.split(",")]
    except ValueError:
        raise ValueError(f"--missing {spec!r}: ratios must be numbers in [0, 1]") from None
    bad = [r for r in values if not 0.0 <= r <= 1.0]
    if bad:
        raise ValueError(f"--missing {spec!r}: ratios must be in [0, 1], got {bad}")
    return kind, values


def choose_missing(n: int, kind: str, ratio: float, modalities: list[str], seed: int) -> dict[str, np.ndarray]:
    """Positions (0..n-1 of the evaluated rows) that lose each modality, per the module docstring."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(ratio * n))
    if kind not in KINDS_SPECIAL:
        return {kind: np.sort(perm[:k])}
    parts = np.array_split(perm[:k], len(modalities))  # disjoint, sizes differ by at most one
    return {m: np.sort(part) for m, part in zip(modalities, parts)}


def mask_rows(feats: dict[str, torch.Tensor], missing: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A copy of a feats dict (all evaluated rows) with the chosen rows' modalities missing."""
    out = dict(feats)
    for m, pos in missing.items():
        if not len(pos):
            continue
        gone = torch.zeros(len(feats[m]), dtype=torch.bool, device=feats[m].device)
        gone[torch.as_tensor(pos, device=gone.device)] = True
        out[m] = feats[m].masked_fill(gone[:, None], 0.0)
        out[f"{m}.present"] = feats[f"{m}.present"] & ~gone
        if f"{m}.token_mask" in feats:
            out[f"{m}.token_mask"] = feats[f"{m}.token_mask"] & ~gone[:, None]
    return out
