"""Fusion heads: importing this package registers every head in ``FUSIONS``.

Use ``create_fusion(name, dims, num_classes, token_dims=None, **head_kwargs)``,
``list_fusions()`` and ``validate_options(name, head_kwargs)`` (run before any training).
Each head module's docstring gives its paper, equations and the way it treats missing
modalities.
"""
from train_heads.fusion import (  # noqa: F401  (imported to register)
    avg_probs,
    centralnet,
    concat,
    cross_attention,
    gmu,
    idkg,
    late,
    linear,
    linear_sum,
    maxout,
    mcam_smsam,
    mlp,
    moe,
    swiglu_attn,
)
from train_heads.fusion.base import (FUSIONS, FusionHead, create_fusion, head_options, list_fusions,
                                     register_fusion, validate_options)

__all__ = ["FUSIONS", "FusionHead", "create_fusion", "head_options", "list_fusions", "register_fusion",
           "validate_options"]
