"""Exact privacy audit against a holdout (public namespace).

Distances are Euclidean in the encoder's metric space (``enc.to_metric(df)``);
every figure of :func:`audit_privacy` comes beside its holdout baseline.
"""

from psygentab_jax._src.audit import (
    EXACT_TOL,
    NEAR_DELTA,
    AttackResult,
    AttributeResult,
    CompositeScore,
    PrivacyReport,
    attribute_inference,
    audit_privacy,
    composite_score,
    dcr,
    dcr_share,
    density_attack,
    distance_attack,
    duplicate_rate,
    exact_match_rate,
    kde_bandwidth,
    near_duplicate_rate,
    nndr,
    privacy_score,
    quantile_gaps,
)
from psygentab_jax._src.neighbors import (
    Neighbors,
    block_knn,
    kde_log_density,
    nearest_neighbors,
)

__all__ = [
    "EXACT_TOL",
    "NEAR_DELTA",
    "AttackResult",
    "AttributeResult",
    "CompositeScore",
    "Neighbors",
    "PrivacyReport",
    "attribute_inference",
    "audit_privacy",
    "block_knn",
    "composite_score",
    "dcr",
    "dcr_share",
    "density_attack",
    "distance_attack",
    "duplicate_rate",
    "exact_match_rate",
    "kde_bandwidth",
    "kde_log_density",
    "near_duplicate_rate",
    "nearest_neighbors",
    "nndr",
    "privacy_score",
    "quantile_gaps",
]
