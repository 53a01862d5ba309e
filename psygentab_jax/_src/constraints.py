"""Privacy and fidelity constraints stated in the audit's own terms.

A user writes ``"dcr_share <= 0.55"``; :func:`parse` turns it into a
:class:`Constraint`. Each metric has two faces computed by :func:`evaluate`: the
*exact* value on hard (arg-max) rows, which feeds the multiplier update and matches
the final audit's definition, and a *surrogate* on soft rows, which is smooth in the
generator's parameters and feeds the augmented Lagrangian term (the proxy / true
split of Cotter et al., 2019). Both are on the same scale, so one threshold serves
both. Constraint values become the ALM convention ``g <= 0`` through :func:`to_g`.

Pure ``jnp``; no pandas. Every function takes rows already in the metric space
(:class:`~psygentab_jax.MetricSpace`).

References:
  Cotter, Jiang, Gupta, Wang, Narayan, You, Sridharan, "Optimization with
  Non-Differentiable Constraints with Applications to Fairness, Recall, Churn, and
  Other Goals", JMLR 2019.
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from psygentab_jax._src import surrogates

EXACT_TOL = 1e-6
NEAR_DUPLICATE_DELTA = 0.1
# The smooth stand-in for "exact match" pushes rows this far from training rows.
EXACT_MATCH_MARGIN = 0.05
TEMPERATURE = 0.05
PAPER_QUANTILES = np.linspace(0.05, 0.95, 19)


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """What a constraint metric measures; ``better`` is the privacy-safe side."""

    family: str  # "privacy" or "fidelity"
    better: str  # "lower" or "higher"
    description: str


METRICS: dict[str, MetricInfo] = {
    "dcr_share": MetricInfo(
        "privacy",
        "lower",
        "share of synthetic rows closer to a training row than to a holdout row "
        "(0.5 = a fresh sample)",
    ),
    "exact_match": MetricInfo(
        "privacy", "lower", "share of synthetic rows equal to a training row"
    ),
    "near_duplicate": MetricInfo(
        "privacy",
        "lower",
        f"share of synthetic rows within {NEAR_DUPLICATE_DELTA} of a training row",
    ),
    "nndr": MetricInfo(
        "privacy",
        "higher",
        "median nearest / second-nearest training-row distance ratio",
    ),
    "dcr_p05_ratio": MetricInfo(
        "privacy",
        "higher",
        "5th percentile of synthetic DCR over that of holdout rows",
    ),
    "mia_auc": MetricInfo(
        "privacy",
        "lower",
        "ROC-AUC of the distance membership attack (0.5 = no leak)",
    ),
    "paper_p": MetricInfo(
        "privacy", "higher", "PSyGenTAB's composite privacy score P (preset)"
    ),
    "class_share_gap": MetricInfo(
        "fidelity",
        "lower",
        "largest gap between a target class's synthetic and real share",
    ),
    "corr_gap": MetricInfo(
        "fidelity",
        "lower",
        "mean absolute gap of the numeric correlation matrices",
    ),
}

_EXPRESSION = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
# The values each metric can take; a threshold outside can never bind or be met.
_RANGES: dict[str, tuple[float, float]] = {
    "dcr_share": (0.0, 1.0),
    "exact_match": (0.0, 1.0),
    "near_duplicate": (0.0, 1.0),
    "nndr": (0.0, 1.0),
    "dcr_p05_ratio": (0.0, np.inf),
    "mia_auc": (0.0, 1.0),
    "paper_p": (0.0, 1.0),
    "class_share_gap": (0.0, 1.0),
    "corr_gap": (0.0, 2.0),
}


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``metric op threshold``, with ``op`` one of ``<=``, ``>=``, ``==``."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def met(self, value: float, tol: float = 1e-9) -> bool:
        """Whether an exact value satisfies the constraint."""
        if not np.isfinite(value):
            return False
        if self.op == "<=":
            return value <= self.threshold + tol
        if self.op == ">=":
            return value >= self.threshold - tol
        return abs(value - self.threshold) <= tol


def parse(text: str | Constraint) -> Constraint:
    """Parse ``"metric <= 0.55"`` (also ``>=``, ``==``; ``<``/``>`` mean the same).

    Raises:
      ValueError: the text does not parse, names an unknown metric, or sets a
        threshold that is not a finite number inside the metric's range.
    """
    if isinstance(text, Constraint):
        return text
    if not isinstance(text, str):
        raise ValueError(
            f"a constraint is a string like 'dcr_share <= 0.55', not {text!r}"
        )
    match = _EXPRESSION.match(text)
    if match is None:
        raise ValueError(
            f"constraint {text!r} does not parse; write it as 'metric <= value', "
            "'metric >= value' or 'metric == value' with a number for value"
        )
    metric, op, value = match.group(1), match.group(2), float(match.group(3))
    if metric not in METRICS:
        raise ValueError(
            f"constraint {text!r} names unknown metric {metric!r}; "
            f"known: {', '.join(METRICS)}"
        )
    low, high = _RANGES.get(metric, (-np.inf, np.inf))
    if not (np.isfinite(value) and low <= value <= high):
        raise ValueError(
            f"constraint {text!r}: {metric} lies in [{low:g}, {high:g}], so "
            f"{value:g} can never be the threshold"
        )
    op = {"<": "<=", ">": ">="}.get(op, op)
    if metric == "exact_match" and op == "==" and value != 0:
        raise ValueError("exact_match can only be required to be 0 (== 0 or <= x)")
    return Constraint(metric, op, value)


def to_g(values: jax.Array, constraints: tuple[Constraint, ...], thresholds=None):
    """Constraint values ``(m,)`` -> ALM form ``g`` with ``g <= 0`` when met.

    ``exact_match == 0`` is the inequality ``exact_match <= 0`` (a rate cannot be
    negative); other ``==`` constraints are equalities ``h = value - threshold``.

    Args:
      values: ``(..., m)`` metric values.
      constraints: the ``m`` constraints (static).
      thresholds: optional ``(..., m)`` thresholds replacing the stated ones (a
        frontier sweeps them).

    Returns:
      ``(g, is_equality)``: ``g`` of the shape of ``values``, and ``(m,)`` bool.
    """
    if thresholds is None:
        thresholds = jnp.asarray([c.threshold for c in constraints], jnp.float32)
    sign = jnp.asarray([-1.0 if c.op == ">=" else 1.0 for c in constraints])
    is_equality = np.asarray(
        [c.op == "==" and c.metric != "exact_match" for c in constraints]
    )
    return sign * (values - thresholds), jnp.asarray(is_equality)


class Context(NamedTuple):
    """Static facts about the metric space the constraints need.

    Attributes:
      numeric: indices of the numeric dimensions of the metric space.
      target: ``(start, width)`` of the target's categorical block, or ``None``.
    """

    numeric: tuple[int, ...]
    target: tuple[int, int] | None


class References(NamedTuple):
    """Real rows and statistics the constraints compare against (arrays).

    Attributes:
      train: ``(t, d)`` training rows in the metric space.
      reference: ``(r, d)`` rows of fresh patients (never trained on), ``r <= t``.
      holdout_dcr: ``(r,)`` distances of ``reference`` rows to ``train`` (the
        fresh-patient baseline).
      target_share: ``(c,)`` class shares of the target in the training table.
      corr: ``(p, p)`` correlation of the numeric dimensions of the training table.
      quantiles: ``(19, p)`` quantiles 0.05..0.95 of the numeric dimensions.
    """

    train: jax.Array
    reference: jax.Array
    holdout_dcr: jax.Array
    target_share: jax.Array
    corr: jax.Array
    quantiles: jax.Array


def make_references(
    train: jax.Array, reference: jax.Array, context: Context
) -> References:
    """:class:`References` from metric-space rows (pure ``jnp``; jit-friendly).

    Args:
      train: ``(t, d)`` training rows.
      reference: ``(r, d)`` fresh-patient rows.
      context: the static facts of the metric space.
    """
    numeric = train[:, list(context.numeric)] if context.numeric else train[:, :0]
    holdout_dcr = jnp.min(_distances(reference, train), axis=1)
    if context.target is not None:
        start, width = context.target
        share = train[:, start : start + width].mean(axis=0) * jnp.sqrt(2.0)
    else:
        share = jnp.zeros(1)
    return References(
        train=train,
        reference=reference,
        holdout_dcr=holdout_dcr,
        target_share=share,
        corr=_corr(numeric),
        quantiles=jnp.quantile(numeric, PAPER_QUANTILES, axis=0),
    )


def _corr(x: jax.Array) -> jax.Array:
    if x.shape[1] == 0:
        return jnp.zeros((0, 0))
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / x.shape[0]
    std = jnp.sqrt(jnp.maximum(jnp.diag(cov), 1e-12))
    return cov / (std[:, None] * std[None, :])


def _distances(x, y):
    return surrogates.pairwise_distance(x, y, eps=1e-12)


def _nearest(distances, soft):
    if soft:
        return surrogates.soft_min(distances, temperature=TEMPERATURE, axis=1)
    return jnp.min(distances, axis=1)


def _indicator(smaller, larger, soft):
    """``[smaller < larger]`` (ties count half), or its sigmoid relaxation."""
    if soft:
        return jax.nn.sigmoid((larger - smaller) / TEMPERATURE)
    return jnp.where(smaller < larger, 1.0, jnp.where(smaller == larger, 0.5, 0.0))


def _auc(members, others, soft):
    """Mann-Whitney AUC of scores ``members`` (positives) over ``others``."""
    return jnp.mean(_indicator(others[None, :], members[:, None], soft))


def metric_value(
    name: str,
    synthetic: jax.Array,
    refs: References,
    context: Context,
    *,
    soft: bool,
) -> jax.Array:
    """One metric on a batch of synthetic rows ``(n, d)`` in the metric space.

    With ``soft=False`` the exact definition (as in :mod:`psygentab_jax.audit`, on
    the given reference rows); with ``soft=True`` its differentiable surrogate.
    """
    r = refs.reference.shape[0]
    if name == "dcr_share":
        to_train = _nearest(_distances(synthetic, refs.train[:r]), soft)
        to_ref = _nearest(_distances(synthetic, refs.reference), soft)
        return jnp.mean(_indicator(to_train, to_ref, soft))
    if name in ("exact_match", "near_duplicate"):
        dcr = _nearest(_distances(synthetic, refs.train), soft)
        if name == "exact_match":
            delta = EXACT_MATCH_MARGIN if soft else EXACT_TOL
        else:
            delta = NEAR_DUPLICATE_DELTA
        if soft:
            return jnp.mean(jax.nn.sigmoid((delta - dcr) / (0.25 * TEMPERATURE)))
        return jnp.mean(dcr <= delta)
    if name == "nndr":
        if soft:
            ratio = surrogates.soft_nndr(synthetic, refs.train, temperature=TEMPERATURE)
        else:
            two = -jax.lax.top_k(-_distances(synthetic, refs.train), 2)[0]
            ratio = two[:, 0] / jnp.maximum(two[:, 1], 1e-12)
        return jnp.median(ratio)
    if name == "dcr_p05_ratio":
        dcr = _nearest(_distances(synthetic, refs.train), soft)
        baseline = jnp.quantile(refs.holdout_dcr, 0.05)
        return jnp.quantile(dcr, 0.05) / jnp.maximum(baseline, 1e-6)
    if name == "mia_auc":
        members = _nearest(_distances(refs.train[:r], synthetic), soft)
        others = _nearest(_distances(refs.reference, synthetic), soft)
        return _auc(-members, -others, soft)
    if name == "paper_p":
        return _paper_p(synthetic, refs, context, soft)
    if name == "class_share_gap":
        if context.target is None:
            return jnp.zeros(())
        start, width = context.target
        block = synthetic[:, start : start + width] * jnp.sqrt(2.0)
        if not soft:
            block = jax.nn.one_hot(jnp.argmax(block, axis=1), width)
        return jnp.max(jnp.abs(block.mean(axis=0) - refs.target_share))
    if name == "corr_gap":
        if len(context.numeric) < 2:
            return jnp.zeros(())
        corr = _corr(synthetic[:, list(context.numeric)])
        p = corr.shape[0]
        upper = jnp.triu(jnp.ones((p, p), bool), k=1)
        return jnp.sum(jnp.where(upper, jnp.abs(corr - refs.corr), 0.0)) / upper.sum()
    raise ValueError(f"unknown metric {name!r}")


def _paper_p(synthetic, refs, context, soft):
    """PSyGenTAB's P = 0.5 DCR_score + 0.3 Q_score + 0.2 I_score (see audit)."""
    dcr = _nearest(_distances(synthetic, refs.train), soft)
    dcr_score = jnp.clip(dcr.mean() / jnp.maximum(jnp.quantile(dcr, 0.95), 1e-12), 0, 1)
    if context.numeric:
        numeric = synthetic[:, list(context.numeric)]
        q = jnp.quantile(numeric, PAPER_QUANTILES, axis=0)
        per_column = jnp.mean(jnp.abs(q - refs.quantiles), axis=0)
        q_score = jnp.clip(
            1 - per_column.mean() / jnp.maximum(4 * jnp.median(per_column), 1e-12),
            0,
            1,
        )
    else:
        q_score = jnp.ones(())
    within = _distances(synthetic, synthetic)
    within = within + jnp.eye(within.shape[0]) * 1e6
    self_dup = _nearest(within, soft)
    if soft:
        dup = jnp.mean(jax.nn.sigmoid((EXACT_MATCH_MARGIN - self_dup) / TEMPERATURE))
        match = jnp.mean(jax.nn.sigmoid((EXACT_MATCH_MARGIN - dcr) / TEMPERATURE))
    else:
        dup = jnp.mean(self_dup <= EXACT_TOL)
        match = jnp.mean(dcr <= EXACT_TOL)
    i_score = jnp.clip(1 - 0.5 * (dup + match) / 0.10, 0, 1)
    return 0.5 * dcr_score + 0.3 * q_score + 0.2 * i_score


def evaluate(
    constraints: tuple[Constraint, ...],
    synthetic: jax.Array,
    refs: References,
    context: Context,
    *,
    soft: bool,
) -> jax.Array:
    """All constraint metrics, ``(m,)``, on one batch (see :func:`metric_value`).

    Each distinct metric is computed once: constraints that bound one metric at
    several thresholds (or from both sides) share its value and its gradient.
    """
    if not constraints:
        return jnp.zeros((0,))
    names = list(dict.fromkeys(c.metric for c in constraints))
    values = jnp.stack(
        [metric_value(name, synthetic, refs, context, soft=soft) for name in names]
    ).astype(jnp.float32)
    if len(names) == len(constraints):
        return values
    return values[jnp.asarray([names.index(c.metric) for c in constraints])]
