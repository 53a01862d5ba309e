"""Output heads, the conditional vector and training-by-sampling.

Everything a backbone needs to read a :class:`~psygentab_jax._src.layout.Layout`:
per-block output activations (``tanh`` for a scalar block, Gumbel-softmax for a
softmax block), the conditional vector that spans the categorical columns' one-hot
blocks, the generator's conditional cross-entropy, and the samplers that draw
conditions (training-by-sampling while training, the training frequencies when
sampling).

The conditional vector has ``CondSpec.width`` entries: the category blocks of the
layout, concatenated in layout order. A row's condition is all zeros except the
one-hot of the chosen column's category, so the chosen column (the "mask" in the
CTGAN paper) can be read back from the vector itself.

References:
  Xu, Skoularidou, Cuesta-Infante, Veeramachaneni. Modeling Tabular Data using
  Conditional GAN. NeurIPS 2019 (conditional vector, training-by-sampling).
  Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from psygentab_jax._src import counter_rng
from psygentab_jax._src.layout import Block, Layout

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CondSpec:
    """Where each categorical column sits in the conditional vector.

    Attributes:
      blocks: the layout's category blocks, in layout order.
      offsets: start of each block inside the conditional vector.
      width: number of entries of the conditional vector (0 when the table has no
        categorical column).
    """

    blocks: tuple[Block, ...]
    offsets: tuple[int, ...]
    width: int

    @classmethod
    def from_layout(cls, layout: Layout) -> CondSpec:
        blocks = layout.category_blocks
        offsets = tuple(int(o) for o in np.cumsum([0] + [b.width for b in blocks]))
        return cls(blocks, offsets[:-1], offsets[-1])

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(b.column for b in self.blocks)

    def index_of(self, column: str) -> int:
        """Position of ``column`` among the categorical columns."""
        if column not in self.columns:
            raise KeyError(f"{column!r} is not a categorical column of this layout")
        return self.columns.index(column)

    def column_of_position(self) -> np.ndarray:
        """Shape (width,): which categorical column each entry belongs to."""
        return np.repeat(np.arange(len(self.blocks)), [b.width for b in self.blocks])

    def data_positions(self) -> np.ndarray:
        """Shape (width,): the encoded-row index of each conditional entry."""
        return np.concatenate(
            [np.arange(b.start, b.stop) for b in self.blocks] or [np.zeros(0, int)]
        )


class DataStats(NamedTuple):
    """Counts a backbone keeps from its training table.

    Attributes:
      category_counts: one array per category block, shape (block.width,): how many
        training rows carry each category.
      n_rows: number of training rows.
    """

    category_counts: tuple[np.ndarray, ...]
    n_rows: int

    @classmethod
    def from_encoded(cls, layout: Layout, data) -> DataStats:
        """Counts the categories of an encoded table.

        Args:
          layout: the table's layout.
          data: encoded rows, shape (n, layout.width).

        Returns:
          The table's statistics.
        """
        data = np.asarray(data)
        counts = tuple(
            np.bincount(np.argmax(data[:, b.slice], axis=1), minlength=b.width)
            for b in layout.category_blocks
        )
        return cls(counts, int(data.shape[0]))

    def frequencies(self) -> np.ndarray:
        """Shape (cond width,): each category's share within its own column."""
        parts = [c / max(c.sum(), 1) for c in self.category_counts]
        return np.concatenate(parts or [np.zeros(0)]).astype(np.float32)


def condition_vector(layout: Layout, column: str, index: int) -> np.ndarray:
    """The conditional vector that asks for one category of one column.

    Args:
      layout: the table's layout.
      column: name of a categorical column.
      index: position of the category inside the column's one-hot block (the
        encoder's category order).

    Returns:
      float32 array of shape (cond width,), one-hot at the requested category.
    """
    spec = CondSpec.from_layout(layout)
    j = spec.index_of(column)
    if not 0 <= index < spec.blocks[j].width:
        raise ValueError(f"category index {index} out of range for {column!r}")
    cond = np.zeros(spec.width, np.float32)
    cond[spec.offsets[j] + index] = 1.0
    return cond


def activate(
    logits: Array, layout: Layout, key: Array, *, tau: float = 0.2, hard: bool = False
) -> Array:
    """Per-block output activations of a generator.

    Args:
      logits: raw outputs, shape (b, layout.width).
      layout: the table's layout.
      key: PRNG key for the Gumbel noise.
      tau: Gumbel-softmax temperature.
      hard: emit exact one-hot softmax blocks (straight-through gradient).

    Returns:
      Encoded rows, shape (b, layout.width): ``tanh`` on scalar blocks, a
      Gumbel-softmax sample on softmax blocks.
    """
    gumbel = jax.random.gumbel(key, logits.shape, logits.dtype)
    parts = []
    for block in layout.blocks:
        segment = logits[:, block.slice]
        if block.kind == "scalar":
            parts.append(jnp.tanh(segment))
            continue
        noisy = (segment + gumbel[:, block.slice]) / tau
        soft = jax.nn.softmax(noisy, axis=-1)
        if hard:
            onehot = jax.nn.one_hot(
                jnp.argmax(noisy, -1), block.width, dtype=soft.dtype
            )
            soft = soft + jax.lax.stop_gradient(onehot - soft)
        parts.append(soft)
    return jnp.concatenate(parts, axis=1)


def softmax_cross_entropy(logits: Array, target: Array, layout: Layout) -> Array:
    """Summed cross-entropy of every softmax block against one-hot targets.

    Args:
      logits: raw outputs, shape (b, layout.width).
      target: encoded rows, shape (b, layout.width).
      layout: the table's layout.

    Returns:
      Shape (b,): the per-row sum over softmax blocks.
    """
    total = jnp.zeros(logits.shape[0], logits.dtype)
    for block in layout.softmax_blocks:
        logp = jax.nn.log_softmax(logits[:, block.slice], axis=-1)
        total = total - jnp.sum(target[:, block.slice] * logp, axis=-1)
    return total


def condition_loss(logits: Array, cond: Array, spec: CondSpec) -> Array:
    """The generator's conditional loss: cross-entropy on the conditioned block.

    Args:
      logits: the generator's raw outputs, shape (b, d).
      cond: conditional vectors, shape (b, spec.width); a row whose vector is all
        zeros contributes nothing.
      spec: the conditional-vector layout.

    Returns:
      Scalar: the mean over rows of the conditioned block's cross-entropy.
    """
    total = jnp.zeros(logits.shape[0], logits.dtype)
    for block, offset in zip(spec.blocks, spec.offsets, strict=True):
        logp = jax.nn.log_softmax(logits[:, block.slice], axis=-1)
        total = total - jnp.sum(cond[:, offset : offset + block.width] * logp, -1)
    return jnp.mean(total)


def force_condition(rows: Array, cond: Array, spec: CondSpec) -> Array:
    """Sets each conditioned block of ``rows`` to the requested one-hot.

    Args:
      rows: encoded rows, shape (b, d).
      cond: conditional vectors, shape (b, spec.width).
      spec: the conditional-vector layout.

    Returns:
      ``rows`` with every block whose conditional span is non-zero replaced by it.
    """
    for block, offset in zip(spec.blocks, spec.offsets, strict=True):
        span = cond[:, offset : offset + block.width]
        active = jnp.sum(span, axis=1, keepdims=True) > 0
        rows = rows.at[:, block.slice].set(
            jnp.where(active, span, rows[:, block.slice])
        )
    return rows


class RowIndex(NamedTuple):
    """Rows grouped by category, for training-by-sampling on device.

    Attributes:
      order: shape (k, n) int32: row ids sorted by their category in column k.
      starts: shape (cond width,) int32: where each category begins in its
        column's row of ``order``.
      counts: shape (cond width,) int32: rows carrying each category.
    """

    order: Array
    starts: Array
    counts: Array


def index_rows(data: Array, spec: CondSpec) -> RowIndex:
    """Groups the rows of an encoded table by category, column by column.

    Args:
      data: encoded rows, shape (n, d).
      spec: the conditional-vector layout (must have at least one column).

    Returns:
      The row index.
    """
    orders, starts, counts = [], [], []
    for block in spec.blocks:
        ids = jnp.argmax(data[:, block.slice], axis=1)
        orders.append(jnp.argsort(ids, stable=True).astype(jnp.int32))
        count = jnp.bincount(ids, length=block.width).astype(jnp.int32)
        counts.append(count)
        starts.append(jnp.cumsum(count) - count)
    return RowIndex(jnp.stack(orders), jnp.concatenate(starts), jnp.concatenate(counts))


def _draw_in_column(key: Array, column: Array, log_weight: Array, spec: CondSpec):
    """Draws one conditional position per row inside the row's chosen column."""
    owner = jnp.asarray(spec.column_of_position())
    logits = jnp.where(owner[None, :] == column[:, None], log_weight[None, :], -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1)


def sample_training_conditions(
    key: Array, index: RowIndex, spec: CondSpec, batch: int
) -> tuple[Array, Array]:
    """Training-by-sampling: a condition per row and a real row that satisfies it.

    A categorical column is chosen uniformly, then one of its categories with
    probability proportional to ``log(1 + count)``, then a training row with that
    category uniformly.

    Args:
      key: PRNG key.
      index: the training rows grouped by category.
      spec: the conditional-vector layout.
      batch: number of conditions b.

    Returns:
      ``(cond, rows)``: conditional vectors of shape (b, spec.width) and the ids of
      matching training rows, shape (b,) int32.

    References:
      Xu et al. 2019, section 4.3.
    """
    k_col, k_cat, k_row = jax.random.split(key, 3)
    column = jax.random.randint(k_col, (batch,), 0, len(spec.blocks))
    log_weight = jnp.log(jnp.log1p(index.counts.astype(jnp.float32)))
    position = _draw_in_column(k_cat, column, log_weight, spec)

    count = index.counts[position]
    within = jnp.floor(jax.random.uniform(k_row, (batch,)) * count).astype(jnp.int32)
    within = jnp.minimum(within, count - 1)
    rows = index.order[column, index.starts[position] + within]
    return jax.nn.one_hot(position, spec.width), rows


def sample_conditions(
    key: Array,
    spec: CondSpec,
    frequencies: Array,
    batch: int,
    column: int | None = None,
) -> Array:
    """Conditions drawn from the training frequencies, for unconditional sampling.

    Args:
      key: PRNG key.
      spec: the conditional-vector layout.
      frequencies: shape (spec.width,): each category's share within its column.
      batch: number of conditions b.
      column: position of the column to condition on (e.g. the target); ``None``
        picks a column per row uniformly.

    Returns:
      Conditional vectors, shape (b, spec.width).
    """
    k_col, k_cat = jax.random.split(key)
    if column is None:
        chosen = jax.random.randint(k_col, (batch,), 0, len(spec.blocks))
    else:
        chosen = jnp.full((batch,), column, jnp.int32)
    position = _draw_in_column(k_cat, chosen, jnp.log(frequencies), spec)
    return jax.nn.one_hot(position, spec.width)


def condition_table(spec: CondSpec, frequencies: np.ndarray) -> np.ndarray:
    """Per-column cumulative category shares, for :func:`draw_conditions`.

    Args:
      spec: the conditional-vector layout.
      frequencies: shape (spec.width,): each category's share within its column.

    Returns:
      float32 array of shape (columns, widest block): row ``j`` holds the running
      share of column ``j``'s categories; its last category and the padding hold
      ``inf``, so counting the entries at or below a uniform ``u`` in [0, 1) gives
      a category index.
    """
    widest = max((b.width for b in spec.blocks), default=1)
    table = np.full((max(len(spec.blocks), 1), widest), np.inf, np.float32)
    frequencies = np.asarray(frequencies, np.float64)
    for j, (block, offset) in enumerate(zip(spec.blocks, spec.offsets, strict=True)):
        shares = frequencies[offset : offset + block.width]
        running = np.cumsum(shares) / max(shares.sum(), 1e-30)
        table[j, : block.width - 1] = running[:-1]
    return table


def draw_conditions(
    key: Array,
    spec: CondSpec,
    table: np.ndarray,
    batch: int,
    column: int | None = None,
) -> Array:
    """Conditions drawn from the training frequencies, two uniforms per row.

    The same distribution as :func:`sample_conditions` (a column uniformly, or
    ``column``; then a category with its training share), found by inverting the
    column's cumulative shares instead of arg-maxing Gumbel noise over every entry.
    For sampling only: the uniforms come from :mod:`counter_rng`.

    Args:
      key: PRNG key.
      spec: the conditional-vector layout.
      table: :func:`condition_table` of the training frequencies.
      batch: number of conditions b.
      column: position of the column to condition on; ``None`` picks one per row.

    Returns:
      Conditional vectors, shape (b, spec.width).
    """
    u = counter_rng.uniform(key, (batch, 2))
    count = len(spec.blocks)
    if column is None:
        chosen = jnp.minimum(jnp.floor(u[:, 0] * count).astype(jnp.int32), count - 1)
        running = jnp.asarray(table)[chosen]
        offset = jnp.asarray(spec.offsets, jnp.int32)[chosen]
    else:  # one column for every row: its shares, with no gather
        running = jnp.asarray(table[column])[None, :]
        offset = spec.offsets[column]
    within = jnp.sum(running <= u[:, 1:], axis=1)
    return jax.nn.one_hot(offset + within, spec.width)


_UNROLLED_CUMSUM = 32
"""Widest softmax block whose running sum :func:`hard_compact` unrolls."""


def hard_compact(logits: Array, layout: Layout, uniforms: Array) -> tuple[Array, Array]:
    """Hard rows in compact form, straight from a generator's raw outputs.

    Scalar blocks get ``tanh``; each softmax block gets one category drawn from
    ``softmax(logits)`` by inverting its cumulative sum at one uniform. That is the
    distribution of the arg max of ``logits + Gumbel noise``, which
    :func:`activate` emits with ``hard=True``, for one random number per block
    instead of one per entry.

    Args:
      logits: raw outputs, shape (b, layout.width).
      layout: the table's layout.
      uniforms: shape (b, len(layout.softmax_blocks)), uniforms in [0, 1).

    Returns:
      ``(values, codes)``: float32 (b, len(layout.scalar_blocks)) and int32
      (b, len(layout.softmax_blocks)), the form of
      :meth:`~psygentab_jax.TableEncoder.encode_compact`.
    """
    values = [jnp.tanh(logits[:, b.start]) for b in layout.scalar_blocks]
    codes = []
    for index, block in enumerate(layout.softmax_blocks):
        segment = logits[:, block.slice]
        weight = jnp.exp(segment - jnp.max(segment, axis=1, keepdims=True))
        u = uniforms[:, index]
        if block.width > _UNROLLED_CUMSUM:
            running = jnp.cumsum(weight, axis=1)
            target = u[:, None] * running[:, -1:]
            codes.append(jnp.sum(running[:, :-1] <= target, axis=1, dtype=jnp.int32))
            continue
        # A narrow block's running sums, column by column in order, fuse into one
        # loop with the exp and the count; on XLA:CPU that made heart_disease_uci's
        # whole compact draw (15 blocks of 2-14) 1.2-1.3x faster than jnp.cumsum.
        running = [weight[:, 0]]
        for j in range(1, block.width):
            running.append(running[-1] + weight[:, j])
        target = u * running[-1]
        code = jnp.zeros(u.shape, jnp.int32)
        for partial in running[:-1]:
            code = code + (partial <= target).astype(jnp.int32)
        codes.append(code)
    b = logits.shape[0]
    values = jnp.stack(values, axis=1) if values else jnp.zeros((b, 0), logits.dtype)
    codes = jnp.stack(codes, axis=1) if codes else jnp.zeros((b, 0), jnp.int32)
    return values, codes


def force_codes(codes: Array, cond: Array, spec: CondSpec, layout: Layout) -> Array:
    """:func:`force_condition` for compact rows: conditioned blocks take the code.

    Args:
      codes: int32 (b, len(layout.softmax_blocks)).
      cond: conditional vectors, shape (b, spec.width) or (spec.width,).
      spec: the conditional-vector layout.
      layout: the table's layout.

    Returns:
      ``codes`` with the code of every block whose conditional span is non-zero
      replaced by the requested category.
    """
    where = {b.start: i for i, b in enumerate(layout.softmax_blocks)}
    cond = jnp.broadcast_to(cond, (codes.shape[0], spec.width))
    for block, offset in zip(spec.blocks, spec.offsets, strict=True):
        span = cond[:, offset : offset + block.width]
        active = jnp.sum(span, axis=1) > 0
        index = where[block.start]
        asked = jnp.argmax(span, axis=1).astype(codes.dtype)
        codes = codes.at[:, index].set(jnp.where(active, asked, codes[:, index]))
    return codes


def row_conditions(key: Array, rows: Array, spec: CondSpec) -> Array:
    """Each row's own category in a uniformly chosen categorical column.

    Args:
      key: PRNG key.
      rows: encoded rows, shape (b, d) with exact one-hot category blocks.
      spec: the conditional-vector layout.

    Returns:
      Conditional vectors, shape (b, spec.width), consistent with ``rows``.
    """
    chosen = jax.random.randint(key, (rows.shape[0],), 0, len(spec.blocks))
    owner = jnp.asarray(spec.column_of_position())
    values = rows[:, jnp.asarray(spec.data_positions())]
    return jnp.where(owner[None, :] == chosen[:, None], values, 0.0)


def column_conditions(rows: Array, spec: CondSpec, column: int) -> Array:
    """Each row's own category in one categorical column, as conditional vectors.

    Args:
      rows: encoded rows, shape (b, d) with exact one-hot category blocks.
      spec: the conditional-vector layout.
      column: position of the column among the categorical columns.

    Returns:
      Conditional vectors, shape (b, spec.width), zero outside that column.
    """
    owner = jnp.asarray(spec.column_of_position())
    values = rows[:, jnp.asarray(spec.data_positions())]
    return jnp.where(owner[None, :] == column, values, 0.0)


def minibatch_indices(key: Array, n: int, batch: int, min_steps: int = 1) -> Array:
    """Shuffled minibatches covering all rows; the last one is padded by wrapping.

    Args:
      key: PRNG key.
      n: number of rows.
      batch: rows per minibatch.
      min_steps: at least this many minibatches; when one pass over the rows
        gives fewer, further passes are drawn, each with its own permutation.

    Returns:
      int32 array of shape (max(ceil(n / batch), min_steps), batch).
    """
    steps = -(-n // batch)
    if min_steps > steps:
        steps = min_steps
        passes = -(-steps * batch // n)
        keys = jax.random.split(key, passes)
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
        return (
            perms.reshape(-1).astype(jnp.int32)[: steps * batch].reshape(steps, batch)
        )
    perm = jax.random.permutation(key, n).astype(jnp.int32)
    padded = jnp.concatenate([perm] * (-(-steps * batch // n)))[: steps * batch]
    return padded.reshape(steps, batch)


def requested_conditions(cond, n: int, width: int, draw) -> Array:
    """The conditional vectors of ``n`` sampled rows.

    Args:
      cond: ``None`` (draw them), or one vector of shape (width,) or (n, width).
      n: number of rows.
      width: entries of the conditional vector (0: no categorical column).
      draw: ``draw() -> (n, width)``, called only when ``cond`` is ``None``.

    Returns:
      float32 array of shape (n, width).
    """
    if not width:
        return jnp.zeros((n, 0))
    if cond is None:
        return draw()
    return jnp.broadcast_to(jnp.asarray(cond, jnp.float32), (n, width))
