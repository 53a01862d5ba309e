"""One-dimensional Gaussian mixtures fitted to many columns at once.

CTGAN's mode-specific normalization fits one scikit-learn
``BayesianGaussianMixture`` per column, serially, on every row. Here all columns
share one batched expectation-maximization loop over an ``(n, c, k)`` array, on a
fixed-size subsample of each column, so the fit costs the same for a thousand rows
as for a million and scales with the number of columns only through vector width.
Components whose weight falls under ``weight_floor`` are pruned during the fit, which
plays the role of the Dirichlet-process prior in CTGAN's fit: a column gets as many
modes as its data support, at most ``max_modes``.

References:
  Xu, Skoularidou, Cuesta-Infante, Veeramachaneni, "Modeling Tabular Data using
  Conditional GAN", NeurIPS 2019 (mode-specific normalization).
  Dempster, Laird, Rubin, "Maximum Likelihood from Incomplete Data via the EM
  Algorithm", JRSS-B 1977.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Mixtures(NamedTuple):
    """Per-column mixture parameters; unused components have weight 0.

    Attributes:
      means: ``(c, k)`` component means.
      stds: ``(c, k)`` component standard deviations (> 0).
      weights: ``(c, k)`` mixing weights; each row sums to 1 over active components.
    """

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray


def fit_mixtures(
    columns: list[np.ndarray],
    *,
    max_modes: int = 10,
    iterations: int = 60,
    weight_floor: float = 0.005,
    max_rows: int = 20_000,
    seed: int = 0,
) -> Mixtures:
    """Fit a 1-D Gaussian mixture to each of ``c`` columns in one batched EM.

    Args:
      columns: ``c`` float arrays of finite values (lengths may differ; each must
        be non-empty).
      max_modes: the most components per column (``k``).
      iterations: EM iterations.
      weight_floor: components lighter than this are pruned.
      max_rows: each column is subsampled (without replacement, by ``seed``) to
        at most this many values before fitting.
      seed: seed of the subsampling.

    Returns:
      :class:`Mixtures` with arrays of shape ``(c, k)``.
    """
    rng = np.random.default_rng(seed)
    c, k = len(columns), max_modes
    sampled = []
    for values in columns:
        values = np.asarray(values, dtype=np.float64)
        if values.size > max_rows:
            values = rng.choice(values, size=max_rows, replace=False)
        sampled.append(values)
    n = max(v.size for v in sampled)
    x = np.zeros((n, c))
    present = np.zeros((n, c))
    for j, values in enumerate(sampled):
        x[: values.size, j] = values
        present[: values.size, j] = 1.0
    count = present.sum(axis=0)  # (c,)

    # Start from evenly spaced quantiles, each component as wide as its share.
    quantiles = (np.arange(k) + 0.5) / k
    means = np.stack([np.quantile(v, quantiles) for v in sampled])  # (c, k)
    spread = np.array([np.std(v) for v in sampled])
    scale = np.where(spread > 0, spread, 1.0)
    stds = np.repeat((scale / k)[:, None] * 2.0, k, axis=1)
    weights = np.full((c, k), 1.0 / k)
    var_floor = (1e-6 * scale) ** 2 + 1e-12

    # Columns with fewer distinct values than components start with duplicates;
    # identical components split their weight and are merged by pruning.
    for _ in range(iterations):
        log_resp = _log_joint(x, means, stds, weights)  # (n, c, k)
        log_resp -= log_resp.max(axis=2, keepdims=True)
        resp = np.exp(log_resp)
        resp /= resp.sum(axis=2, keepdims=True)
        resp *= present[:, :, None]
        mass = resp.sum(axis=0)  # (c, k)
        weights = mass / count[:, None]
        alive = weights >= weight_floor
        safe_mass = np.where(mass > 0, mass, 1.0)
        new_means = np.einsum("nck,nc->ck", resp, x) / safe_mass
        centred = x[:, :, None] - new_means[None]
        var = np.einsum("nck,nck->ck", resp, centred**2) / safe_mass
        means = np.where(alive, new_means, means)
        stds = np.sqrt(np.maximum(np.where(alive, var, stds**2), var_floor[:, None]))
        weights = np.where(alive, weights, 0.0)
        weights /= weights.sum(axis=1, keepdims=True)

    order = np.argsort(np.where(weights > 0, means, np.inf), axis=1)
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    return Mixtures(take(means), take(stds), take(weights))


def _log_joint(x, means, stds, weights):
    """``log w_k + log N(x | mu_k, sigma_k)`` of shape ``(n, c, k)``."""
    z = (x[:, :, None] - means[None]) / stds[None]
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)[None]
    return log_w - np.log(stds)[None] - 0.5 * z * z


def assign_modes(
    x: np.ndarray, means: np.ndarray, stds: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The most probable component of each value.

    Args:
      x: ``(n,)`` finite values of one column.
      means, stds, weights: ``(k,)`` that column's mixture (weight 0 = unused).

    Returns:
      ``(n,)`` int32 component indices.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights).astype(np.float32)
    offsets = log_w - np.log(stds).astype(np.float32)
    means, stds = means.astype(np.float32), stds.astype(np.float32)

    # One component at a time on (n,) buffers, with the float32 arithmetic of
    # ``offset - 0.5 * z * z`` for z = (x - mean) / std; strictly greater keeps the
    # first of tied components, as np.argmax does.
    index = np.zeros(x.shape, dtype=np.int32)
    best = np.full(x.shape, -np.inf, dtype=np.float32)
    z, score = np.empty_like(best), np.empty_like(best)
    better = np.empty(x.shape, dtype=bool)
    for k in range(means.size):
        np.subtract(x, means[k], out=z)
        np.divide(z, stds[k], out=z)
        np.multiply(z, 0.5, out=score)
        np.multiply(score, z, out=score)
        np.subtract(offsets[k], score, out=score)
        if k == 0:
            best[...] = score
            continue
        np.greater(score, best, out=better)
        np.copyto(index, k, where=better)
        np.maximum(best, score, out=best)
    return index
