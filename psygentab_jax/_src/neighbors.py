"""Blocked exact nearest-neighbour search and kernel density on the metric space.

Both kernels stream a query block against reference blocks, so their memory is
bounded by ``query_block * reference_block`` (plus the inputs) however many rows
are compared. A block of squared Euclidean distances comes from one matmul through
the expansion ``||a||^2 + ||b||^2 - 2 a.b``: the reference norms ride along as one
extra column, so the matmul returns ``||b||^2 - 2 a.b`` directly (the query norm is
constant along a row and does not change the ranking). Rows are centred on the
reference mean first, which leaves distances unchanged and shrinks the rounding of
the expansion. The nearest-neighbour search reduces each block to the minimum of
every small group of reference rows and keeps a few groups per query; the rows of
those groups are then measured directly, so no index is tracked in the stream.

The functions here are pure and jittable with the block sizes static;
:func:`nearest_neighbors` and :func:`kde_log_density_np` are the drivers, which pad
inputs into a few shape buckets and compile once per bucket.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# The augmented norm of a padded reference row: far above any real squared
# distance, yet finite so the matmul never forms 0 * inf.
_PAD_NORM = 1e30


class Neighbors(NamedTuple):
    """The ``k`` nearest reference rows of each query row, nearest first.

    Attributes:
      distance: Euclidean distances, ``shape=(n, k)``, ascending along a row.
      index: row numbers in the reference array, ``shape=(n, k)``, int32.
    """

    distance: jax.Array
    index: jax.Array


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _augment(queries, reference, valid, *, query_block, reference_block, pad_to):
    """Centre, append the norm column, and pad both arrays into whole blocks.

    ``valid`` (int, possibly traced) counts the real reference rows; the rows after
    it are padding, pushed out of reach by a huge norm.
    """
    n, d = queries.shape
    m = reference.shape[0]
    width = _round_up(d + 1, pad_to)
    is_real = jnp.arange(m) < valid
    center = jnp.sum(jnp.where(is_real[:, None], reference, 0.0), axis=0) / valid
    q = queries - center
    r = reference - center

    norms = jnp.where(is_real, jnp.sum(r * r, axis=1), _PAD_NORM)
    r_aug = jnp.concatenate([jnp.where(is_real[:, None], r, 0.0), norms[:, None]], 1)
    r_aug = jnp.pad(r_aug, ((0, _round_up(m, reference_block) - m), (0, width - d - 1)))
    r_aug = r_aug.at[m:, d].set(_PAD_NORM)

    ones = jnp.ones((n, 1), q.dtype)
    q_aug = jnp.concatenate([-2.0 * q, ones], axis=1)
    q_aug = jnp.pad(q_aug, ((0, _round_up(n, query_block) - n), (0, width - d - 1)))
    return (
        q_aug.reshape(-1, query_block, width),
        r_aug.reshape(-1, reference_block, width),
        center,
    )


def _block_scores(q_block, r_block):
    # shape=(reference_block, query_block): ||b||^2 - 2 a.b for every pair. Queries
    # run along the minor axis, so the reductions over reference rows below are
    # elementwise across contiguous vectors, which vectorize well on CPU.
    return lax.dot_general(
        r_block, q_block, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST
    )


def _smallest(scores, count):
    """The ``count`` smallest scores of each column and their row numbers.

    A min pass, then an index pass (the first row attaining the min), then the
    winner is masked out: two plain reductions per pick, which run faster on CPU
    than a variadic argmin or a sort.

    Args:
      scores: ``shape=(rows, q)``.
      count: how many to keep, at most ``rows``.

    Returns:
      Values and row numbers, each ``shape=(q, count)``, ascending.
    """
    height = scores.shape[0]
    row = lax.broadcasted_iota(jnp.int32, scores.shape, 0)
    values, indices = [], []
    for step in range(count):
        value = jnp.min(scores, axis=0)
        index = jnp.min(jnp.where(scores <= value[None, :], row, height), axis=0)
        values.append(value)
        indices.append(index)
        if step + 1 < count:
            scores = jnp.where(row == index[None, :], jnp.inf, scores)
    return jnp.stack(values, axis=1), jnp.stack(indices, axis=1)


def _insert(best_values, best_ids, value, ids):
    """Insert one candidate per query into sorted running lists.

    Args:
      best_values: ``shape=(q, slots)``, ascending along a row.
      best_ids: ``shape=(q, slots)``, what each value belongs to.
      value: ``shape=(q,)``, the new candidate of each query.
      ids: ``shape=(q,)`` int32, carried with ``value``.

    Returns:
      The lists with ``value`` placed in order and the largest entry dropped; a
      value equal to an entry goes after it.
    """
    value, ids = value[:, None], ids[:, None]
    below = value < best_values
    # Entries at or after the newcomer's place move one slot right.
    shifted_values = jnp.concatenate([value, best_values[:, :-1]], axis=1)
    shifted_ids = jnp.concatenate([ids, best_ids[:, :-1]], axis=1)
    below_before = jnp.concatenate(
        [jnp.zeros_like(below[:, :1]), below[:, :-1]], axis=1
    )
    land = below & ~below_before
    new_values = jnp.where(land, value, shifted_values)
    new_ids = jnp.where(land, ids, shifted_ids)
    return (
        jnp.where(below, new_values, best_values),
        jnp.where(below, new_ids, best_ids),
    )


def _k_smallest(sq, rows, k):
    """The ``k`` smallest entries of each row of ``sq`` and their row numbers.

    Ties go to the smallest row number, so the answer does not depend on the
    order the candidates were gathered in; a row listed twice is one candidate.

    Args:
      sq: ``shape=(q, c)`` squared distances (``inf`` for padding).
      rows: ``shape=(q, c)`` int32 reference row numbers.
      k: how many to keep.

    Returns:
      ``(sq, rows)`` of the winners, each ``shape=(q, k)``, ascending.
    """
    past_end = jnp.iinfo(jnp.int32).max
    values, indices = [], []
    for step in range(k):
        value = jnp.min(sq, axis=1)
        index = jnp.min(jnp.where(sq <= value[:, None], rows, past_end), axis=1)
        values.append(value)
        indices.append(index)
        if step + 1 < k:
            sq = jnp.where(rows == index[:, None], jnp.inf, sq)
    return jnp.stack(values, axis=1), jnp.stack(indices, axis=1)


def block_knn(
    queries: jax.Array,
    reference: jax.Array,
    *,
    k: int = 1,
    extra: int = 1,
    query_block: int = 256,
    reference_block: int = 2048,
    pad_to: int = 8,
    n_reference: int | jax.Array | None = None,
    group: int = 32,
) -> Neighbors:
    """Exact ``k`` nearest neighbours under the Euclidean distance, in blocks.

    Two passes. The first streams reference blocks through the matmul expansion;
    a block's scores are reduced to the minimum of each ``group`` of consecutive
    reference rows, and only the ``k + extra`` groups with the smallest minima
    are kept per query (at most ``k`` from one block). The ``k`` nearest rows lie
    in those groups: a group holding one of them has a minimum at most its
    score, so dropping it would take ``k`` groups of the same block, or ``k +
    extra`` groups in all, with minima no larger, that is more closer rows than
    a ``k``-th nearest can have. The second pass measures every row of the kept
    groups directly as ``sum((a - b)^2)``, so the distances returned carry no
    cancellation error (an exact duplicate is at 0); the ``extra`` groups absorb
    near ties that the expansion's rounding could mis-rank.

    Args:
      queries: rows to search for, ``shape=(n, d)``, float32.
      reference: rows to search among, ``shape=(m, d)``, with ``m >= k + extra``.
      k: neighbours returned per query.
      extra: additional candidate groups kept for the exact pass.
      query_block: query rows per block (the last block is padded).
      reference_block: reference rows per block (the last block is padded).
      pad_to: the feature width (plus the norm column) is padded to a multiple of
        this, for the matmul's vector lanes.
      n_reference: how many leading rows of ``reference`` are real (the rest is
        padding, never returned); ``None`` for all. It may be traced, so callers
        can pad to a few bucketed shapes and compile once per bucket. Must be at
        least ``k + extra``.
      group: reference rows per candidate group (reduced to a divisor of
        ``reference_block``); the exact pass reads ``(k + extra) * group`` rows
        per query.

    Returns:
      :class:`Neighbors` with ``distance`` and ``index`` of ``shape=(n, k)``.
    """
    n, d = queries.shape
    m = reference.shape[0]
    count = k + extra
    if m < count:
        raise ValueError(f"reference has {m} rows, need at least k + extra = {count}")
    valid = m if n_reference is None else n_reference
    queries = jnp.asarray(queries, jnp.float32)
    reference = jnp.asarray(reference, jnp.float32)
    q_blocks, r_blocks, _ = _augment(
        queries,
        reference,
        valid,
        query_block=query_block,
        reference_block=reference_block,
        pad_to=pad_to,
    )
    n_blocks = r_blocks.shape[0]
    group = math.gcd(group, reference_block)
    per_block = reference_block // group
    picks = min(k, per_block)
    first_group = jnp.arange(n_blocks, dtype=jnp.int32) * per_block
    q_rows = jnp.pad(queries, ((0, q_blocks.shape[0] * query_block - n), (0, 0)))
    q_rows = q_rows.reshape(-1, query_block, d)
    r_groups = jnp.pad(reference, ((0, n_blocks * reference_block - m), (0, 0)))
    r_groups = r_groups.reshape(n_blocks * per_block, group, d)
    within = jnp.arange(group, dtype=jnp.int32)

    def search(block):
        q_block, rows = block

        def step(carry, r_item):
            r_block, first = r_item
            scores = _block_scores(q_block, r_block)  # (reference_block, query_block)
            lowest = jnp.min(scores.reshape(per_block, group, -1), axis=1)
            values, groups = _smallest(lowest, picks)
            for j in range(picks):
                carry = _insert(*carry, values[:, j], groups[:, j] + first)
            return carry, None

        init = (
            jnp.full((query_block, count), jnp.inf, jnp.float32),
            jnp.zeros((query_block, count), jnp.int32),
        )
        (_, chosen), _ = lax.scan(step, init, (r_blocks, first_group))

        # Exact pass; memory query_block * count * group * d. Slots never filled
        # point at group 0: real rows, so extra candidates, never wrong ones.
        diff = rows[:, None, None, :] - r_groups[chosen]
        sq = jnp.sum(diff * diff, axis=-1).reshape(query_block, -1)
        index = (chosen[:, :, None] * group + within).reshape(sq.shape)
        sq = jnp.where(index < valid, sq, jnp.inf)
        sq, index = _k_smallest(sq, index, k)
        return jnp.sqrt(sq), index

    distance, index = lax.map(search, (q_blocks, q_rows))
    return Neighbors(distance.reshape(-1, k)[:n], index.reshape(-1, k)[:n])


def kde_log_density(
    points: jax.Array,
    samples: jax.Array,
    bandwidth: float | jax.Array,
    *,
    query_block: int = 256,
    reference_block: int = 2048,
    pad_to: int = 8,
    n_samples: int | jax.Array | None = None,
) -> jax.Array:
    """Log density of an isotropic Gaussian kernel density estimate, in blocks.

    ``log p(x) = logsumexp_j(-||x - s_j||^2 / (2 h^2)) - log m - (d / 2) log(2 pi h^2)``
    with the ``m`` samples ``s_j`` and bandwidth ``h``; the sum over samples is a
    running log-sum-exp over reference blocks.

    Args:
      points: where to evaluate, ``shape=(n, d)``.
      samples: the kernel centres, ``shape=(m, d)``.
      bandwidth: the kernel's standard deviation ``h`` (metric units), scalar.
      query_block: points per block.
      reference_block: samples per block.
      pad_to: feature width padding, as in :func:`block_knn`.
      n_samples: how many leading rows of ``samples`` are real, as
        ``n_reference`` of :func:`block_knn`; ``None`` for all.

    Returns:
      Log densities, ``shape=(n,)``.
    """
    n, d = points.shape
    m = samples.shape[0] if n_samples is None else n_samples
    points = jnp.asarray(points, jnp.float32)
    samples = jnp.asarray(samples, jnp.float32)
    q_blocks, r_blocks, center = _augment(
        points,
        samples,
        m,
        query_block=query_block,
        reference_block=reference_block,
        pad_to=pad_to,
    )
    centred = points - center
    q_norms = jnp.sum(centred * centred, axis=1)
    q_norms = jnp.pad(q_norms, (0, q_blocks.shape[0] * query_block - n))
    q_norms = q_norms.reshape(-1, query_block)
    scale = 0.5 / jnp.square(jnp.asarray(bandwidth, jnp.float32))

    def density(block):
        q_block, norms = block

        def step(carry, r_block):
            peak, total = carry
            scores = _block_scores(q_block, r_block)  # shape=(samples, points)
            sq = jnp.maximum(scores + norms[None, :], 0.0)
            logits = jnp.where(scores < 0.5 * _PAD_NORM, -scale * sq, -jnp.inf)
            new_peak = jnp.maximum(peak, jnp.max(logits, axis=0))
            total = total * jnp.exp(peak - new_peak) + jnp.sum(
                jnp.exp(logits - new_peak[None, :]), axis=0
            )
            return (new_peak, total), None

        init = (
            jnp.full((query_block,), -jnp.inf, jnp.float32),
            jnp.zeros((query_block,), jnp.float32),
        )
        (peak, total), _ = lax.scan(step, init, r_blocks)
        return peak + jnp.log(total)

    log_sum = lax.map(density, (q_blocks, q_norms)).reshape(-1)[:n]
    log_norm = jnp.log(m) + 0.5 * d * jnp.log(jnp.pi / scale)
    return log_sum - log_norm


@functools.cache
def _compiled_knn(k, extra, query_block, reference_block, pad_to):
    def search(queries, reference, n_reference):
        return block_knn(
            queries,
            reference,
            k=k,
            extra=extra,
            query_block=query_block,
            reference_block=reference_block,
            pad_to=pad_to,
            n_reference=n_reference,
        )

    return jax.jit(search)


@functools.cache
def _compiled_kde(query_block, reference_block, pad_to):
    def density(points, samples, bandwidth, n_samples):
        return kde_log_density(
            points,
            samples,
            bandwidth,
            query_block=query_block,
            reference_block=reference_block,
            pad_to=pad_to,
            n_samples=n_samples,
        )

    return jax.jit(density)


def _bucket(rows: int, block: int) -> tuple[int, int]:
    """A block no larger than needed (a power of two, at least 8) and the padded
    row count, a multiple of it: shapes fall into few buckets, so few compiles."""
    block = min(block, max(8, 1 << (rows - 1).bit_length()))
    return block, _round_up(rows, block)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.pad(x, ((0, rows - x.shape[0]), (0, 0)))


def nearest_neighbors(
    queries,
    reference,
    *,
    k: int = 1,
    extra: int = 1,
    query_block: int = 256,
    reference_block: int = 2048,
    pad_to: int = 8,
) -> Neighbors:
    """Driver for :func:`block_knn`: numpy in, numpy out, few compiles.

    Both arrays are padded with zero rows to a multiple of their block size (a
    block is shrunk to the next power of two of a small input) and the real
    reference count is passed as data, so one compiled search serves every
    input of the same padded shape.

    Args:
      queries: ``shape=(n, d)``, array-like.
      reference: ``shape=(m, d)``, array-like.
      k: neighbours returned per query.
      extra: additional candidates re-ranked exactly (see :func:`block_knn`).
      query_block: largest query block.
      reference_block: largest reference block.
      pad_to: feature width padding, as in :func:`block_knn`.

    Returns:
      :class:`Neighbors` holding numpy arrays of ``shape=(n, k)``.
    """
    queries = np.asarray(queries, np.float32)
    reference = np.asarray(reference, np.float32)
    n, m = queries.shape[0], reference.shape[0]
    if m < k:
        raise ValueError(f"reference has {m} rows, fewer than k = {k}")
    extra = max(min(extra, m - k), 0)
    query_block, n_pad = _bucket(n, query_block)
    reference_block, m_pad = _bucket(m, reference_block)
    search = _compiled_knn(k, extra, query_block, reference_block, pad_to)
    distance, index = search(
        _pad_rows(queries, n_pad), _pad_rows(reference, m_pad), np.int32(m)
    )
    return Neighbors(np.asarray(distance)[:n], np.asarray(index)[:n])


def kde_log_density_np(
    points,
    samples,
    bandwidth: float,
    *,
    query_block: int = 256,
    reference_block: int = 2048,
    pad_to: int = 8,
) -> np.ndarray:
    """Driver for :func:`kde_log_density`: numpy in, numpy out, few compiles.

    Args:
      points: ``shape=(n, d)``, array-like.
      samples: ``shape=(m, d)``, array-like.
      bandwidth: kernel standard deviation (metric units).
      query_block, reference_block, pad_to: as in :func:`nearest_neighbors`.

    Returns:
      ``shape=(n,)`` log densities.
    """
    points = np.asarray(points, np.float32)
    samples = np.asarray(samples, np.float32)
    n, m = points.shape[0], samples.shape[0]
    query_block, n_pad = _bucket(n, query_block)
    reference_block, m_pad = _bucket(m, reference_block)
    density = _compiled_kde(query_block, reference_block, pad_to)
    log_density = density(
        _pad_rows(points, n_pad),
        _pad_rows(samples, m_pad),
        np.float32(bandwidth),
        np.int32(m),
    )
    return np.asarray(log_density)[:n]
