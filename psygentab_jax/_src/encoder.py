"""Reversible encoding of a clinical table into a float32 array, and back.

The adapter between pandas and the JAX core. Each learned column becomes one or two
blocks of the encoded row (see :mod:`psygentab_jax._src.layout`):

* continuous, integer and datetime columns: a ``"value"`` scalar and a ``"mode"``
  one-hot block. The modes are, in order, the components of a per-column Gaussian
  mixture (mode-specific normalization, as in CTGAN), the column's point masses
  (values that carry 5 % or more of the rows, e.g. an imputed constant or a zero
  that stands for "not measured"; they decode exactly) and, when the column has
  missing values, an explicit "missing" mode. A value ``x`` in Gaussian mode ``k``
  is stored as ``(x - mu_k) / (4 sigma_k)``; in a point mass or missing mode the
  scalar is 0.
* categorical columns: a ``"category"`` one-hot block, with "missing" as its last
  category when the column has missing values.
* constant columns are written back as their value; identifiers are never learned
  and decoded rows get fresh keys (``1..n`` for numeric keys, ``"syn-<i>"`` for
  text keys).

Decoding picks the arg-max of each one-hot block, clips numbers to the observed
range, rounds them to the column's recorded precision (the fewest decimals, up to 6,
that reproduce every observed value), rounds integers, and casts every column back
to its original dtype.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from psygentab_jax._src import mixture
from psygentab_jax._src.layout import Block, Layout
from psygentab_jax._src.schema import Schema, SchemaError, check_frame

ATOM_SHARE = 0.05
MAX_ATOMS = 3
MAX_DECIMALS = 6

# Rows per slab when the dense encoding is written or read: a slab of ``(rows,
# width)`` float32 stays in cache while it is zeroed, scattered into or transposed.
SLAB_ROWS = 4096
# Softmax blocks up to this width are decoded on transposed slabs.
NARROW_BLOCK = 16
# A numeric column whose first PROBE_ROWS values hold at most a quarter distinct
# values is encoded one distinct value at a time (ages, days, scores repeat).
PROBE_ROWS = 16_384


@dataclasses.dataclass
class _Numeric:
    name: str
    kind: str
    dtype: str
    missing: bool
    means: np.ndarray  # (k,) active Gaussian modes
    stds: np.ndarray  # (k,)
    weights: np.ndarray  # (k,)
    atoms: np.ndarray  # (a,) point masses
    low: float
    high: float
    decimals: int | None
    center: float
    scale: float
    unit: str | None = None  # datetime: "D" or "s"
    text_format: str | None = None  # datetime stored as text

    @property
    def n_modes(self) -> int:
        return self.means.size + self.atoms.size + int(self.missing)


@dataclasses.dataclass
class _Categorical:
    name: str
    dtype: str
    missing: bool
    categories: np.ndarray  # (c,) object

    @property
    def width(self) -> int:
        return self.categories.size + int(self.missing)


class MetricColumn(NamedTuple):
    """A slice of the metric space.

    ``kind`` is ``"numeric"`` (one standardized value, 0 when missing),
    ``"missing"`` (1 when the numeric column of that name is missing) or
    ``"categorical"`` (a one-hot block scaled by ``1/sqrt(2)``).
    """

    name: str
    kind: str
    start: int
    width: int


class MetricSpace:
    """The space in which privacy distances are measured.

    A numeric column contributes ``(x - median) / std`` (0 when missing) and, if it
    has missing values, a missingness indicator; a categorical column contributes
    its one-hot block scaled by ``1/sqrt(2)``, so two rows that differ in one
    category are at distance 1, about one standard deviation of a numeric column.
    Missingness is thus a value of its own. Distances are Euclidean.

    :meth:`embed` maps the model encoding to this space with pure ``jnp`` code: soft
    (differentiable, mode probabilities weight the mode means) or hard (arg-max).
    """

    def __init__(self, layout: Layout, numeric: list[_Numeric]):
        self.layout = layout
        entries, columns, position = [], [], 0
        by_name = {c.name: c for c in numeric}
        for block in layout.blocks:
            if block.role == "value":
                col = by_name[block.column]
                mode = layout.blocks_of(block.column)[1]
                centres = np.concatenate([col.means, col.atoms])
                spans = np.concatenate([4.0 * col.stds, np.zeros(col.atoms.size)])
                entries.append(
                    (
                        "numeric",
                        block.start,
                        mode.start,
                        mode.width,
                        col.missing,
                        jnp.asarray(centres, jnp.float32),
                        jnp.asarray(spans, jnp.float32),
                        float(col.center),
                        float(col.scale),
                    )
                )
                columns.append(MetricColumn(col.name, "numeric", position, 1))
                position += 1
                if col.missing:
                    columns.append(MetricColumn(col.name, "missing", position, 1))
                    position += 1
            elif block.role == "category":
                entries.append(("categorical", block.start, block.width))
                columns.append(
                    MetricColumn(block.column, "categorical", position, block.width)
                )
                position += block.width
        self._entries = entries
        self.columns: tuple[MetricColumn, ...] = tuple(columns)
        self.width = position
        self._hard = jax.jit(lambda x: self.embed(x, hard=True))

    def embed(self, encoded: jax.Array, *, hard: bool = False) -> jax.Array:
        """Map encoded rows ``(n, d_model)`` to the metric space ``(n, width)``."""
        parts = []
        for entry in self._entries:
            if entry[0] == "categorical":
                _, start, width = entry
                probs = encoded[:, start : start + width]
                if hard:
                    probs = _hard(probs)
                parts.append(probs * (1.0 / math.sqrt(2.0)))
                continue
            _, value_at, mode_at, width, missing, centres, spans, center, scale = entry
            probs = encoded[:, mode_at : mode_at + width]
            if hard:
                probs = _hard(probs)
            value = encoded[:, value_at : value_at + 1]
            k = centres.shape[0]
            x = jnp.sum(probs[:, :k] * (centres + spans * value), axis=1)
            observed = jnp.sum(probs[:, :k], axis=1)
            z = (x - center * observed) / scale
            parts.append(z[:, None])
            if missing:
                parts.append(probs[:, k:])
        return jnp.concatenate(parts, axis=1)

    def embed_hard(self, encoded: np.ndarray) -> np.ndarray:
        """Arg-max embedding as a NumPy float32 array (the exact audit's input)."""
        return np.asarray(self._hard(jnp.asarray(encoded)))


def _hard(probs: jax.Array) -> jax.Array:
    """One-hot of the arg-max; an all-zero row (unknown value) stays zero."""
    hot = jax.nn.one_hot(jnp.argmax(probs, axis=1), probs.shape[1])
    return hot * (jnp.max(probs, axis=1, keepdims=True) > 0)


class TableEncoder:
    """Fit once on a table and its schema; then ``encode`` and ``decode``.

    Example::

        schema = infer_schema(df, target="disease")
        encoder = TableEncoder(schema).fit(df)
        x = encoder.encode(df)            # (n, encoder.layout.width) float32
        back = encoder.decode(x)          # same columns, dtypes and values

    Args:
      schema: the table's :class:`~psygentab_jax.Schema`.
      max_modes: the most Gaussian modes per numeric column.
      seed: seed of the subsample the mixtures are fitted on.
    """

    def __init__(self, schema: Schema, *, max_modes: int = 10, seed: int = 0):
        self.schema = schema
        self.max_modes = max_modes
        self.seed = seed
        self._fitted = False

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame) -> TableEncoder:
        """Learn each column's transform from ``df``; returns ``self``."""
        check_frame(df)
        self.schema.check_frame(df)
        numeric_values, numeric_specs = [], []
        self._numeric, self._categorical, self._constants = {}, {}, {}
        for spec in self.schema.columns:
            series = df[spec.name]
            if spec.kind == "constant":
                values = series.dropna()
                self._constants[spec.name] = values.iloc[0] if len(values) else None
            elif spec.kind == "categorical":
                self._categorical[spec.name] = _fit_categorical(spec, series)
            elif spec.kind in ("continuous", "integer", "datetime"):
                values, unit, text_format = _to_float(spec, series)
                numeric_values.append(values)
                numeric_specs.append((spec, unit, text_format))
        self._fit_numeric(numeric_values, numeric_specs)
        self.layout = self._build_layout()
        self.metric_space = MetricSpace(self.layout, list(self._numeric.values()))
        self._fitted = True
        return self

    def _fit_numeric(self, all_values, specs) -> None:
        to_fit, fit_index = [], []
        prepared = []
        for values, (spec, unit, text_format) in zip(all_values, specs, strict=True):
            observed = values[~np.isnan(values)]
            atoms = _point_masses(observed)
            rest = observed[~np.isin(observed, atoms)]
            prepared.append((spec, unit, text_format, observed, atoms))
            if rest.size:
                fit_index.append(len(prepared) - 1)
                to_fit.append(rest)
        fitted = {}
        if to_fit:
            mix = mixture.fit_mixtures(to_fit, max_modes=self.max_modes, seed=self.seed)
            for row, index in enumerate(fit_index):
                alive = mix.weights[row] > 0
                fitted[index] = (
                    mix.means[row][alive],
                    mix.stds[row][alive],
                    mix.weights[row][alive],
                )
        for index, (spec, unit, text_format, observed, atoms) in enumerate(prepared):
            empty = np.zeros(0)
            means, stds, weights = fitted.get(index, (empty, empty, empty))
            std = float(np.std(observed))
            self._numeric[spec.name] = _Numeric(
                name=spec.name,
                kind=spec.kind,
                dtype=spec.dtype,
                missing=spec.missing or bool(len(observed) < len(all_values[index])),
                means=means,
                stds=stds,
                weights=weights,
                atoms=atoms,
                low=float(observed.min()),
                high=float(observed.max()),
                decimals=0 if spec.kind != "continuous" else _decimals(observed),
                center=float(np.median(observed)),
                scale=std if std > 0 else 1.0,
                unit=unit,
                text_format=text_format,
            )

    def _build_layout(self) -> Layout:
        blocks, start = [], 0
        for spec in self.schema.columns:
            if spec.name in self._numeric:
                width = self._numeric[spec.name].n_modes
                blocks.append(Block(spec.name, "scalar", "value", start, 1))
                blocks.append(Block(spec.name, "softmax", "mode", start + 1, width))
                start += 1 + width
            elif spec.name in self._categorical:
                width = self._categorical[spec.name].width
                blocks.append(Block(spec.name, "softmax", "category", start, width))
                start += width
        if not blocks:
            raise SchemaError("the schema leaves no column to learn")
        return Layout(tuple(blocks))

    # --------------------------------------------------------------- encode
    def encode_compact(
        self, df: pd.DataFrame, *, unknown: str = "error"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``df`` without materializing one-hot blocks.

        ``unknown="ignore"`` encodes a category unseen at ``fit`` time (or a
        missing value in a column that had none) as code ``-1``, an all-zero block,
        instead of raising; the audit uses it for rows the encoder was not fitted
        on.

        Returns:
          ``values``: float32 ``(n, len(layout.scalar_blocks))``, the scalar blocks
          in layout order; ``codes``: int32 ``(n, len(layout.softmax_blocks))``, the
          hot index of each softmax block in layout order. :func:`expand` turns them
          into the dense encoding (on device, inside a jitted step, if wanted).

        Raises:
          SchemaError: a learned column is absent, a number is not finite, or a
            categorical value was not seen at ``fit`` time (its column is named).
        """
        values_t, codes_t = self._encode_columns(df, unknown)
        return np.ascontiguousarray(values_t.T), np.ascontiguousarray(codes_t.T)

    def _encode_columns(
        self, df: pd.DataFrame, unknown: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """The compact encoding with one row per block, ``(blocks, n)``.

        Each column is encoded into a contiguous row, not a strided column.
        """
        self._check_fitted()
        learned = [b.column for b in self.layout.blocks]
        absent = sorted({c for c in learned if c not in df.columns})
        if absent:
            raise SchemaError(f"the table lacks learned columns {absent}")
        n = len(df)
        values_t = np.empty((len(self.layout.scalar_blocks), n), dtype=np.float32)
        codes_t = np.empty((len(self.layout.softmax_blocks), n), dtype=np.int32)
        value_at = code_at = 0
        for block in self.layout.blocks:
            if block.role == "value":
                col = self._numeric[block.column]
                raw, _, _ = _to_float(self.schema[block.column], df[block.column])
                values_t[value_at], codes_t[code_at] = _encode_numeric(
                    col, raw, unknown
                )
                value_at += 1
                code_at += 1
            elif block.role == "category":
                col = self._categorical[block.column]
                codes_t[code_at] = _category_codes(col, df[block.column], unknown)
                code_at += 1
        return values_t, codes_t

    def encode(
        self,
        df: pd.DataFrame,
        *,
        out: np.ndarray | None = None,
        unknown: str = "error",
    ) -> np.ndarray:
        """Encode ``df`` into a float32 array of shape ``(n, layout.width)``.

        Args:
          df: a frame with the learned columns of the schema.
          out: optional preallocated float32 ``(n, layout.width)`` buffer to write
            into (it is overwritten), to avoid a fresh allocation per call.
          unknown: ``"error"`` or ``"ignore"`` (see :meth:`encode_compact`).

        Raises:
          SchemaError: a learned column is absent, a number is not finite, or a
            categorical value was not seen at ``fit`` time (its column is named).
        """
        values_t, codes_t = self._encode_columns(df, unknown)
        n, width = len(df), self.layout.width
        if out is None:
            out = np.empty((n, width), dtype=np.float32)
        elif out.shape != (n, width) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {(n, width)}")
        if out.flags.c_contiguous:
            _write_dense(self.layout, values_t, codes_t, out)
        else:
            dense = np.empty((n, width), dtype=np.float32)
            _write_dense(self.layout, values_t, codes_t, dense)
            out[...] = dense
        return out

    def to_metric(self, df: pd.DataFrame, *, unknown: str = "error") -> np.ndarray:
        """The exact audit's view of ``df``: ``(n, metric_space.width)`` float32.

        With ``unknown="ignore"`` an unseen category contributes a zero block (it is
        at distance ``1/sqrt(2)`` from every known category) and an unexpected
        missing number contributes 0.
        """
        return self.metric_space.embed_hard(self.encode(df, unknown=unknown))

    # --------------------------------------------------------------- decode
    def decode(self, encoded) -> pd.DataFrame:
        """Turn ``(n, layout.width)`` rows back into a frame of the schema's columns.

        One-hot blocks may hold probabilities or logits: the arg-max is taken.
        """
        self._check_fitted()
        encoded = np.asarray(encoded, dtype=np.float32)
        if encoded.ndim != 2 or encoded.shape[1] != self.layout.width:
            raise ValueError(
                f"expected encoded rows of shape (n, {self.layout.width}), "
                f"got {encoded.shape}"
            )
        values_t, codes_t = _read_dense(self.layout, encoded)
        return self.decode_compact(values_t.T, codes_t.T)

    def decode_compact(self, values: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
        """Decode the compact form of :meth:`encode_compact` into a frame."""
        self._check_fitted()
        values, codes = np.asarray(values), np.asarray(codes)
        n = codes.shape[0]
        value_index = {b.column: i for i, b in enumerate(self.layout.scalar_blocks)}
        code_index = {b.column: i for i, b in enumerate(self.layout.softmax_blocks)}
        columns = {}
        for spec in self.schema.columns:
            name = spec.name
            if name in self._numeric:
                col = self._numeric[name]
                raw = _decode_numeric(
                    col, values[:, value_index[name]], codes[:, code_index[name]]
                )
                columns[name] = _numeric_series(col, raw)
            elif name in self._categorical:
                col = self._categorical[name]
                columns[name] = _categorical_series(col, codes[:, code_index[name]])
            elif spec.kind == "constant":
                value = self._constants[name]
                columns[name] = pd.Series(np.repeat(value, n)).astype(spec.dtype)
            else:
                columns[name] = _fresh_keys(spec.dtype, n)
        return pd.DataFrame(columns)[self.schema.names]

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("TableEncoder.fit must be called first")

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Everything needed to rebuild the fitted encoder, as JSON-able data."""
        self._check_fitted()

        def numeric(col: _Numeric) -> dict:
            data = dataclasses.asdict(col)
            for key in ("means", "stds", "weights", "atoms"):
                data[key] = [float(v) for v in getattr(col, key)]
            return data

        def categorical(col: _Categorical) -> dict:
            return {
                "name": col.name,
                "dtype": col.dtype,
                "missing": col.missing,
                "categories": [_json_scalar(v) for v in col.categories],
            }

        return {
            "schema": self.schema.to_dict(),
            "max_modes": self.max_modes,
            "seed": self.seed,
            "numeric": [numeric(c) for c in self._numeric.values()],
            "categorical": [categorical(c) for c in self._categorical.values()],
            "constants": {k: _json_scalar(v) for k, v in self._constants.items()},
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> TableEncoder:
        """Rebuild an encoder saved by :meth:`state_dict`."""
        try:
            encoder = cls(
                Schema.from_dict(state["schema"]),
                max_modes=state["max_modes"],
                seed=state["seed"],
            )
            encoder._numeric = {}
            for data in state["numeric"]:
                data = dict(data)
                for key in ("means", "stds", "weights", "atoms"):
                    data[key] = np.asarray(data[key], dtype=np.float64)
                encoder._numeric[data["name"]] = _Numeric(**data)
            encoder._categorical = {
                d["name"]: _Categorical(
                    d["name"],
                    d["dtype"],
                    d["missing"],
                    _object_array(d["categories"]),
                )
                for d in state["categorical"]
            }
            encoder._constants = dict(state["constants"])
        except (KeyError, TypeError) as err:
            raise SchemaError(f"not a saved encoder: {err}") from None
        encoder.layout = encoder._build_layout()
        encoder.metric_space = MetricSpace(
            encoder.layout, list(encoder._numeric.values())
        )
        encoder._fitted = True
        return encoder


# ------------------------------------------------------------------ helpers
def _object_array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _to_float(spec, series: pd.Series) -> tuple[np.ndarray, str | None, str | None]:
    """A numeric column as float64 with NaN for missing (datetimes in days or s)."""
    if spec.kind == "datetime":
        text_format = None
        if not pd.api.types.is_datetime64_any_dtype(series):
            sample = str(series.dropna().iloc[0]) if series.notna().any() else ""
            text_format = "%Y-%m-%d" if len(sample) == 10 else "%Y-%m-%d %H:%M:%S"
            if "T" in sample:
                text_format = "%Y-%m-%dT%H:%M:%S"
            try:
                series = pd.to_datetime(series, format="ISO8601")
            except (ValueError, TypeError) as err:
                raise SchemaError(
                    f"column {spec.name!r}: unreadable dates ({err})"
                ) from None
        stamps = series.astype("datetime64[ns]")
        nanos = stamps.to_numpy(dtype="int64", na_value=0).astype(np.float64)
        nanos[stamps.isna().to_numpy()] = np.nan
        whole_days = np.nanmax(np.abs(np.fmod(nanos, 86_400e9)), initial=0.0) == 0
        unit = "D" if whole_days else "s"
        return nanos / (86_400e9 if whole_days else 1e9), unit, text_format
    try:
        values = pd.to_numeric(series, errors="raise")
    except (ValueError, TypeError):
        raise SchemaError(
            f"column {spec.name!r} is {spec.kind} but holds non-numeric values"
        ) from None
    array = np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if np.isinf(array).any():
        raise SchemaError(f"column {spec.name!r} has infinite values")
    return array, None, None


def _point_masses(observed: np.ndarray) -> np.ndarray:
    if observed.size == 0:
        return np.zeros(0)
    values, counts = np.unique(observed, return_counts=True)
    if values.size <= 2:
        return values.astype(np.float64)
    heavy = counts >= ATOM_SHARE * observed.size
    order = np.argsort(-counts[heavy], kind="stable")[:MAX_ATOMS]
    return np.sort(values[heavy][order]).astype(np.float64)


def _decimals(observed: np.ndarray) -> int | None:
    sample = observed[: min(observed.size, 200_000)]
    tolerance = 1e-9 * np.maximum(1.0, np.abs(sample))
    for decimals in range(MAX_DECIMALS + 1):
        if np.all(np.abs(np.round(sample, decimals) - sample) <= tolerance):
            return decimals
    return None


def _encode_numeric(col: _Numeric, values: np.ndarray, unknown: str = "error"):
    """``(n,)`` float32 scalars and int32 modes of one numeric column."""
    if values.size > 4 * PROBE_ROWS and 4 * pd.unique(values[:PROBE_ROWS]).size <= (
        PROBE_ROWS
    ):
        # Few distinct values: encode each once (in order of first appearance, so
        # an error names the same value) and gather; NaN is code -1, the last entry.
        local, distinct = pd.factorize(values, use_na_sentinel=True)
        if (local < 0).any():
            distinct = np.append(distinct, np.nan)
        value, mode = _encode_values(col, distinct, unknown)
        return value.take(local), mode.take(local)
    return _encode_values(col, values, unknown)


def _encode_values(col: _Numeric, values: np.ndarray, unknown: str):
    n = values.size
    value = np.zeros(n, dtype=np.float32)
    mode = np.zeros(n, dtype=np.int32)
    missing = np.isnan(values)
    atom = np.zeros(n, dtype=bool)
    k = col.means.size
    for index, point in enumerate(col.atoms):
        hit = values == point
        mode[hit] = k + index
        atom |= hit
    gaussian = ~(missing | atom)
    if gaussian.any() and k == 0 and unknown != "error":
        mode[gaussian] = -1
    elif gaussian.any():
        if k == 0:
            bad = values[gaussian][0]
            raise SchemaError(
                f"column {col.name!r}: value {bad!r} is not among its fitted values"
            )
        x = values[gaussian]
        which = mixture.assign_modes(x, col.means, col.stds, col.weights)
        mode[gaussian] = which
        value[gaussian] = (x - col.means[which]) / (4.0 * col.stds[which])
    if col.missing:
        mode[missing] = k + col.atoms.size
    elif missing.any():
        if unknown == "error":
            raise SchemaError(
                f"column {col.name!r} has missing values but had none at fit time"
            )
        mode[missing] = -1
    return value, mode


def _decode_numeric(col: _Numeric, value: np.ndarray, mode: np.ndarray) -> np.ndarray:
    k = col.means.size
    # One gather per table: Gaussian modes hold (mean, 4 std), point masses
    # (atom, 0), "missing" and out-of-range codes (NaN, 0).
    centre = np.concatenate([col.means, col.atoms, [np.nan]])
    span = np.concatenate([4.0 * col.stds, np.zeros(col.atoms.size + 1)])
    mode = np.where((mode < 0) | (mode >= centre.size), centre.size - 1, mode)
    out = centre.take(mode)
    if k:
        gaussian = mode < k
        which = mode[gaussian]
        out[gaussian] += value[gaussian].astype(np.float64) * span[which]
    out = np.clip(out, col.low, col.high, out=out)
    if col.decimals is not None:
        out = np.round(out, col.decimals)
    return out


def _numeric_series(col: _Numeric, values: np.ndarray) -> pd.Series:
    if col.kind == "datetime":
        scale = 86_400e9 if col.unit == "D" else 1e9
        nanos = np.round(values * scale)
        stamps = pd.to_datetime(
            pd.Series(nanos).astype("Int64"), unit="ns", errors="coerce"
        )
        if col.text_format is not None:
            text = stamps.dt.strftime(col.text_format)
            return text.astype(col.dtype)
        return stamps.astype(col.dtype)
    series = pd.Series(values)
    dtype = pd.api.types.pandas_dtype(col.dtype)
    if pd.api.types.is_integer_dtype(dtype) and np.isnan(values).any():
        return series.astype("Int64")
    return series.astype(dtype)


def _write_dense(
    layout: Layout, values_t: np.ndarray, codes_t: np.ndarray, out: np.ndarray
) -> None:
    """Write the dense encoding into C-contiguous ``out``, one slab of rows at a time.

    Each slab is zeroed, gets its scalars and its ones while it is in cache; a code
    of -1 (an ignored unknown) leaves its block at zero.
    """
    n, width = out.shape
    rows = max(1, min(n, SLAB_ROWS))
    hot_at = np.array([b.start for b in layout.softmax_blocks], dtype=np.int64)
    slots = np.arange(rows, dtype=np.int64)[:, None] * width + hot_at  # (rows, s)
    all_known = bool((codes_t >= 0).all())
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        slab = out[start:stop]
        slab.fill(0.0)
        for index, block in enumerate(layout.scalar_blocks):
            slab[:, block.start] = values_t[index, start:stop]
        codes = codes_t[:, start:stop].T
        hot = slots[: stop - start] + codes
        slab.reshape(-1)[hot if all_known else hot[codes >= 0]] = 1.0


def _read_dense(layout: Layout, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scalar blocks ``(scalars, n)`` and arg-max codes ``(softmaxes, n)`` of rows.

    Rows are read one slab at a time. Narrow blocks are transposed in cache, so a
    block's maximum and the first entry that reaches it are found with a few
    vectorized passes along contiguous rows; wide blocks use ``np.argmax`` per row.
    The result is ``np.argmax``'s: ties and NaN go to the first such entry.
    """
    n = encoded.shape[0]
    scalars, softmaxes = layout.scalar_blocks, layout.softmax_blocks
    values_t = np.empty((len(scalars), n), dtype=np.float32)
    codes_t = np.empty((len(softmaxes), n), dtype=np.int32)
    narrow = [(i, b) for i, b in enumerate(softmaxes) if b.width <= NARROW_BLOCK]
    columns = np.array([c for _, b in narrow for c in range(b.start, b.stop)], int)
    at = np.cumsum([0] + [b.width for _, b in narrow])
    # Weight w - j for entry j: the largest weight among the maxima marks the first.
    rank = {
        b.width: np.arange(b.width, 0, -1, dtype=np.uint8)[:, None] for _, b in narrow
    }
    rows = max(1, min(n, SLAB_ROWS))
    slab_t = np.empty((columns.size, rows), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        slab = encoded[start:stop]
        for index, block in enumerate(scalars):
            values_t[index, start:stop] = slab[:, block.start]
        narrow_t = slab_t[:, : stop - start]
        np.copyto(narrow_t, slab[:, columns].T)
        for (index, block), first in zip(narrow, at, strict=False):
            entries = narrow_t[first : first + block.width]
            top = (entries == entries.max(axis=0)) * rank[block.width]
            code = codes_t[index, start:stop]
            np.subtract(block.width, top.max(axis=0), out=code, casting="unsafe")
            nan = code == block.width  # a NaN maximum equals nothing
            if nan.any():
                code[nan] = np.argmax(slab[nan][:, block.slice], axis=1)
        for index, block in enumerate(softmaxes):
            if block.width > NARROW_BLOCK:
                codes_t[index, start:stop] = np.argmax(slab[:, block.slice], axis=1)
    return values_t, codes_t


def expand(layout: Layout, values: jax.Array, codes: jax.Array) -> jax.Array:
    """Dense encoding ``(n, layout.width)`` from the compact form, in ``jnp``.

    Args:
      layout: the encoded layout (static).
      values: ``(n, len(layout.scalar_blocks))`` scalar blocks in layout order.
      codes: ``(n, len(layout.softmax_blocks))`` int hot indices in layout order.
    """
    parts, value_at, code_at = [], 0, 0
    for block in layout.blocks:
        if block.kind == "scalar":
            parts.append(values[:, value_at : value_at + 1].astype(jnp.float32))
            value_at += 1
        else:
            parts.append(jax.nn.one_hot(codes[:, code_at], block.width))
            code_at += 1
    return jnp.concatenate(parts, axis=1)


def _fit_categorical(spec, series: pd.Series) -> _Categorical:
    values = pd.unique(series.dropna())
    try:
        values = np.sort(values)
    except TypeError:
        pass
    return _Categorical(
        name=spec.name,
        dtype=spec.dtype,
        missing=spec.missing or bool(series.isna().any()),
        categories=_object_array(values),
    )


def _category_codes(
    col: _Categorical, series: pd.Series, unknown: str = "error"
) -> np.ndarray:
    # Factorize, then map the few distinct values onto the fitted categories; every
    # check runs on the distinct values, not on the rows.
    local, distinct = _factorize(series)
    mapping = pd.Index(col.categories).get_indexer(distinct).astype(np.int32)
    missing = np.asarray(pd.isna(distinct), dtype=bool)
    unseen = (mapping < 0) & ~missing
    if unseen.any() and unknown == "error":
        examples = list(dict.fromkeys(distinct[i] for i in np.flatnonzero(unseen)))
        raise SchemaError(
            f"column {col.name!r} has categories not seen at fit time: {examples[:3]}"
        )
    has_missing = bool(missing.any() or (local < 0).any())
    missing_code = col.categories.size if col.missing else -1
    if has_missing and not col.missing and unknown == "error":
        raise SchemaError(
            f"column {col.name!r} has missing values but had none at fit time"
        )
    mapping[missing] = missing_code
    # Code -1 of pandas' factorize (a missing value) takes the last entry.
    return np.append(mapping, np.int32(missing_code)).take(local)


def _factorize(series: pd.Series) -> tuple[np.ndarray, object]:
    """Codes ``(n,)`` into distinct values, as ``pd.factorize`` (NA may be -1).

    An object column (strings under pandas 2) is factorized by object address:
    rows read from a file share one object per distinct string, so hashing
    integers replaces hashing strings. Equal strings held by different objects get
    different codes, which the caller's mapping onto categories merges again; where
    nearly every row holds its own object, strings are hashed as usual.
    """
    values = series.to_numpy() if series.dtype == object else None
    if values is not None and values.size and values.flags.c_contiguous:
        cells = (ctypes.c_ssize_t * values.size).from_address(values.ctypes.data)
        local, addresses = pd.factorize(np.ctypeslib.as_array(cells))
        if 8 * addresses.size <= values.size:
            where = np.empty(addresses.size, dtype=np.intp)
            where[local] = np.arange(local.size)
            return local, values[where]
    return pd.factorize(series, use_na_sentinel=True)


def _categorical_series(col: _Categorical, codes: np.ndarray) -> pd.Series:
    codes = np.where(codes >= col.categories.size, -1, codes)
    dtype = pd.api.types.pandas_dtype(col.dtype)
    if isinstance(dtype, pd.StringDtype) and getattr(dtype, "storage", "") in (
        "pyarrow",
        "pyarrow_numpy",
    ):
        # Arrow-backed strings: gather in arrow, never through Python objects.
        import pyarrow as pa

        table = pa.array([str(v) for v in col.categories], type=pa.large_string())
        taken = table.take(pa.array(codes, mask=codes < 0))
        return pd.Series(pd.array(taken, dtype=dtype))
    values = col.categories.take(np.maximum(codes, 0))
    missing = codes < 0
    if missing.any():
        values = values.copy()
        values[missing] = np.nan
    series = pd.Series(values, dtype=object)
    if pd.api.types.is_integer_dtype(dtype) and missing.any():
        return series.astype("Int64")
    if pd.api.types.is_float_dtype(dtype):
        return series.astype(np.float64).astype(dtype)
    return series.astype(dtype)


def _fresh_keys(dtype: str, n: int) -> pd.Series:
    resolved = pd.api.types.pandas_dtype(dtype)
    if pd.api.types.is_numeric_dtype(resolved):
        return pd.Series(np.arange(1, n + 1)).astype(resolved)
    return pd.Series([f"syn-{i}" for i in range(1, n + 1)]).astype(resolved)
