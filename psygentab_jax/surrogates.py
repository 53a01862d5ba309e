"""Differentiable surrogates of the privacy audit (public namespace).

Inputs are rows already in the metric space (``space.embed(encoded)``); each
surrogate returns a value on the scale of the exact metric it tracks in
:mod:`psygentab_jax.audit`.
"""

from psygentab_jax._src.surrogates import (
    pairwise_distance,
    soft_dcr,
    soft_dcr_share,
    soft_membership_auc,
    soft_min,
    soft_near_duplicate_rate,
    soft_nndr,
)

__all__ = [
    "pairwise_distance",
    "soft_dcr",
    "soft_dcr_share",
    "soft_membership_auc",
    "soft_min",
    "soft_near_duplicate_rate",
    "soft_nndr",
]
