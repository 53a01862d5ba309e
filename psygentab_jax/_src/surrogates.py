"""Differentiable surrogates of the exact privacy audit, for the trainer.

Every function takes rows already in the metric space (the trainer maps its
encoding with ``space.embed(encoded)`` first) and returns a value on the scale of
the exact metric of :mod:`psygentab_jax.audit` it approximates, so one threshold
serves the constraint during training and the audit afterwards. They are pure
``jnp`` functions of whole batches (memory ``n * m`` for ``n`` synthetic and ``m``
reference rows); the caller jits them.

Two smooth pieces carry the approximations, both with a ``temperature`` in metric
units:

* the soft minimum of distances ``d_j`` is their Boltzmann average
  ``sum_j softmax(-d / tau)_j d_j``: it lies between the minimum and the mean, and
  tends to the minimum as ``tau -> 0`` (unlike ``-tau logsumexp(-d / tau)``, it
  never falls below the minimum, so it stays on the scale of a distance);
* an indicator ``[a < b]`` becomes ``sigmoid((b - a) / tau)``.

Distances are ``sqrt(max(sq, eps))`` of the squared Euclidean distance from the
matmul expansion ``||x||^2 + ||y||^2 - 2 x.y``, so the gradient is finite even for
an exact duplicate. Such a duplicate sits at ``sqrt(eps)`` plus the float32
rounding of the expansion, a few ``1e-3`` for rows of a few dozen standardized
coordinates: far below the near-duplicate radius, but above the audit's exact-match
tolerance, so no surrogate of the exact-match rate is offered; use
:func:`soft_near_duplicate_rate`.

.. warning::
   On batches, distances to the nearest reference row are larger than on the full
   training table (a copied row is an exact match only if its source is in the
   reference batch): the surrogates rank generators as the audit does, but their
   levels on small reference batches are biased towards "more private".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_EPS = 1e-8


def pairwise_distance(x: jax.Array, y: jax.Array, *, eps: float = DEFAULT_EPS):
    """Euclidean distances between two sets of rows with a finite gradient.

    Args:
      x: ``shape=(n, d)``.
      y: ``shape=(m, d)``.
      eps: floor of the squared distance: where the expansion gives less, the
        distance is ``sqrt(eps)`` and its gradient 0 instead of ``inf``.

    Returns:
      ``shape=(n, m)`` distances.
    """
    # Centring is a numerical device (smaller norms, less cancellation): keep it
    # out of the gradient.
    center = jax.lax.stop_gradient(jnp.mean(y, axis=0))
    x = x - center
    y = y - center
    sq = (
        jnp.sum(x * x, axis=1)[:, None]
        + jnp.sum(y * y, axis=1)[None, :]
        - 2.0 * jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
    )
    return jnp.sqrt(jnp.maximum(sq, eps))


def soft_min(distances: jax.Array, *, temperature: float, axis: int = -1):
    """Boltzmann soft minimum ``sum softmax(-d / tau) * d`` along ``axis``.

    Args:
      distances: any shape.
      temperature: ``tau`` in the units of ``distances``; smaller is closer to the
        hard minimum.
      axis: the axis reduced.

    Returns:
      ``distances`` with ``axis`` removed.
    """
    weights = jax.nn.softmax(-distances / temperature, axis=axis)
    return jnp.sum(weights * distances, axis=axis)


def soft_dcr(
    synthetic: jax.Array,
    reference: jax.Array,
    *,
    temperature: float = 0.02,
    eps: float = DEFAULT_EPS,
) -> jax.Array:
    """Soft distance to the closest reference record of each synthetic row.

    Approximates :func:`psygentab_jax.audit.dcr`; take ``jnp.median`` or a quantile
    of the result for the audit's summaries.

    Args:
      synthetic: ``shape=(n, d)`` rows in the metric space.
      reference: ``shape=(m, d)`` training rows in the metric space.
      temperature: soft-minimum temperature (metric units).
      eps: squared-distance floor, see :func:`pairwise_distance`.

    Returns:
      ``shape=(n,)`` soft DCRs (metric units).
    """
    distances = pairwise_distance(synthetic, reference, eps=eps)
    return soft_min(distances, temperature=temperature, axis=1)


def soft_dcr_share(
    synthetic: jax.Array,
    train: jax.Array,
    holdout: jax.Array,
    *,
    temperature: float = 0.05,
    eps: float = DEFAULT_EPS,
) -> jax.Array:
    """Soft share of synthetic rows closer to a training row than to a holdout row.

    ``mean_i sigmoid((dcr_holdout_i - dcr_train_i) / tau)`` with soft DCRs; a fresh
    sample of the population scores 0.5, a copy of the training rows 1. Pass
    ``train`` and ``holdout`` batches of the same size, as the exact
    :func:`psygentab_jax.audit.dcr_share` does.

    Args:
      synthetic: ``shape=(n, d)``.
      train: ``shape=(m, d)`` training rows.
      holdout: ``shape=(m, d)`` holdout rows.
      temperature: for both the soft minimum and the sigmoid (metric units).
      eps: squared-distance floor.

    Returns:
      A scalar in ``[0, 1]``.
    """
    to_train = soft_dcr(synthetic, train, temperature=temperature, eps=eps)
    to_holdout = soft_dcr(synthetic, holdout, temperature=temperature, eps=eps)
    return jnp.mean(jax.nn.sigmoid((to_holdout - to_train) / temperature))


def soft_near_duplicate_rate(
    synthetic: jax.Array,
    reference: jax.Array,
    *,
    delta: float = 0.1,
    temperature: float = 0.02,
    eps: float = DEFAULT_EPS,
) -> jax.Array:
    """Soft share of synthetic rows within ``delta`` of a reference row.

    ``mean_i sigmoid((delta - dcr_i) / tau)`` with soft DCRs; approximates
    :func:`psygentab_jax.audit.near_duplicate_rate` at the same ``delta``.

    Args:
      synthetic: ``shape=(n, d)``.
      reference: ``shape=(m, d)`` training rows.
      delta: the near-duplicate radius (metric units).
      temperature: for both the soft minimum and the sigmoid.
      eps: squared-distance floor.

    Returns:
      A scalar in ``[0, 1]``.
    """
    distances = soft_dcr(synthetic, reference, temperature=temperature, eps=eps)
    return jnp.mean(jax.nn.sigmoid((delta - distances) / temperature))


def soft_nndr(
    synthetic: jax.Array,
    reference: jax.Array,
    *,
    temperature: float = 0.02,
    eps: float = DEFAULT_EPS,
) -> jax.Array:
    """Soft nearest-neighbour distance ratio of each synthetic row.

    The numerator is the soft minimum over all reference rows; the denominator
    the soft minimum over the reference rows other than the nearest one. Both are
    at least ``sqrt(eps)``, so the ratio is finite; approximates
    :func:`psygentab_jax.audit.nndr`.

    Args:
      synthetic: ``shape=(n, d)``.
      reference: ``shape=(m, d)`` training rows, ``m >= 2``.
      temperature: soft-minimum temperature.
      eps: squared-distance floor.

    Returns:
      ``shape=(n,)`` ratios in ``(0, 1]``, up to the softness.
    """
    distances = pairwise_distance(synthetic, reference, eps=eps)
    first = soft_min(distances, temperature=temperature, axis=1)

    nearest = jnp.argmin(distances, axis=1)
    column = jnp.arange(distances.shape[1])[None, :]
    is_nearest = column == nearest[:, None]
    logits = jnp.where(is_nearest, -jnp.inf, -distances / temperature)
    weights = jax.nn.softmax(logits, axis=1)
    second = jnp.sum(jnp.where(is_nearest, 0.0, weights * distances), axis=1)
    return first / jnp.maximum(second, first)


def soft_membership_auc(
    synthetic: jax.Array,
    train: jax.Array,
    holdout: jax.Array,
    *,
    temperature: float = 0.05,
    eps: float = DEFAULT_EPS,
) -> jax.Array:
    """Soft ROC-AUC of the distance membership attack.

    The exact attack (:func:`psygentab_jax.audit.distance_attack`) scores a
    record by minus its distance to the closest synthetic row and separates
    members (training rows) from non-members (holdout rows). Its AUC is the
    Mann-Whitney statistic ``P(score_member > score_non_member)``; here every pair
    comparison is a sigmoid of the soft-DCR gap:
    ``mean_{i, j} sigmoid((dcr(holdout_j) - dcr(train_i)) / tau)``. 0.5 means no
    leak, 1 a generator that copies its training rows.

    Args:
      synthetic: ``shape=(n, d)`` rows of the generator.
      train: ``shape=(m, d)`` member rows.
      holdout: ``shape=(h, d)`` non-member rows.
      temperature: for both the soft minimum and the sigmoid.
      eps: squared-distance floor.

    Returns:
      A scalar in ``[0, 1]``.
    """
    members = soft_dcr(train, synthetic, temperature=temperature, eps=eps)
    others = soft_dcr(holdout, synthetic, temperature=temperature, eps=eps)
    gaps = others[None, :] - members[:, None]
    return jnp.mean(jax.nn.sigmoid(gaps / temperature))
