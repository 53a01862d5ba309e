"""Exact privacy audit of synthetic rows against training and holdout patients.

Everything is measured in the metric space of the encoder (``enc.to_metric(df)``):
a numeric column is its standardized value ``(x - median) / scale`` (0 when
missing, plus a 0/1 missingness coordinate when the column has missing values), a
categorical column is its one-hot block scaled by ``1 / sqrt(2)`` (so two different
categories are at distance 1; missing is a category of its own). The distance
between two rows is the Euclidean distance in that space. The numbers are exact
(every row against every row, by the blocked search of
:mod:`psygentab_jax._src.neighbors`) and are not differentiable; the trainer's
differentiable counterparts live in :mod:`psygentab_jax.surrogates`.

Every figure comes with its holdout baseline: the same statistic computed for
holdout rows (real patients the generator never saw) in place of synthetic rows.
A generator that leaks nothing about its training rows looks, to each statistic,
like a fresh sample of the population, which is what the holdout is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from psygentab_jax._src.neighbors import kde_log_density_np, nearest_neighbors

EXACT_TOL = 1e-6
"""Two rows are an exact match when their metric distance is at most this."""

NEAR_DELTA = 0.1
"""Default near-duplicate radius in metric units: a tenth of the distance between
two categories, or about a tenth of a standard deviation of one numeric column."""

QUANTILE_LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2).tolist())


class ColumnLike(Protocol):
    """What the audit reads of a metric column (``MetricColumn`` fits)."""

    name: str
    kind: str
    start: int
    width: int


class AttackResult(NamedTuple):
    """How well an attack separates members from non-members.

    Attributes:
      auc: ROC-AUC of the attack's score (0.5 is chance, 1 a perfect attack).
      tpr_at_1pct_fpr: true-positive rate at a false-positive rate of at most 1 %
        (0.01 is chance).
    """

    auc: float
    tpr_at_1pct_fpr: float


class AttributeResult(NamedTuple):
    """Attribute inference on one sensitive column.

    Attributes:
      kind: ``"categorical"`` (scores are accuracies) or ``"numeric"`` (scores are
        ``1 - SSE / SST``, an R^2 on the standardized value).
      train: the attack's score on training patients.
      holdout: the same attack's score on holdout patients (the baseline).
    """

    kind: str
    train: float
    holdout: float


class CompositeScore(NamedTuple):
    """The paper's composite privacy score and its three parts, each in [0, 1]."""

    score: float
    dcr_score: float
    quantile_score: float
    identity_score: float


def _rows(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected rows of shape (n, d), got {x.shape}")
    return x


def dcr(synthetic, reference, **search) -> np.ndarray:
    """Distance of each synthetic row to its closest reference row.

    Args:
      synthetic: ``shape=(n, d)`` rows in the metric space.
      reference: ``shape=(m, d)`` rows (usually the training rows).
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      ``shape=(n,)`` Euclidean distances in metric units.
    """
    found = nearest_neighbors(_rows(synthetic), _rows(reference), k=1, **search)
    return found.distance[:, 0]


def nndr(synthetic, reference, **search) -> np.ndarray:
    """Nearest-neighbour distance ratio of each synthetic row among reference rows.

    ``d_1 / d_2``, the distances to the nearest and second-nearest reference rows;
    ``0 / 0`` (the row duplicates two identical reference rows) is defined as 0,
    the riskiest value. Small ratios flag rows much closer to one patient than to
    any other.

    Args:
      synthetic: ``shape=(n, d)``.
      reference: ``shape=(m, d)``, ``m >= 2``.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      ``shape=(n,)`` ratios in ``[0, 1]``.
    """
    distance = nearest_neighbors(_rows(synthetic), _rows(reference), k=2, **search)[0]
    return _ratio(distance)


def _ratio(distance: np.ndarray) -> np.ndarray:
    first, second = distance[:, 0], distance[:, 1]
    return np.where(second > 0, first / np.where(second > 0, second, 1.0), 0.0)


def _share_closer(to_train: np.ndarray, to_holdout: np.ndarray, tol: float) -> float:
    tie = np.abs(to_train - to_holdout) <= tol
    return float(np.mean(np.where(tie, 0.5, (to_train < to_holdout).astype(float))))


def dcr_share(
    synthetic,
    train,
    holdout,
    *,
    seed: int = 0,
    tol: float = EXACT_TOL,
    **search,
) -> float:
    """Share of synthetic rows closer to a training row than to a holdout row.

    The larger of the two real sets is subsampled (without replacement, with
    ``seed``) to the size of the smaller, so that a fresh sample of the population
    scores 0.5; a generator that copies its training rows scores 1. Distances
    within ``tol`` of each other count as a tie, worth one half.

    Args:
      synthetic: ``shape=(n, d)``.
      train: ``shape=(m, d)`` training rows.
      holdout: ``shape=(h, d)`` holdout rows.
      seed: seed of the subsampling.
      tol: tie tolerance (metric units).
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      The share, in ``[0, 1]``.
    """
    return _dcr_share(synthetic, train, holdout, seed, tol, **search)[0]


def _dcr_share(synthetic, train, holdout, seed, tol, *, to_train=None, **search):
    """:func:`dcr_share`, reusing and handing back the searches it needs.

    ``to_train``, the ``(n,)`` DCRs of the synthetic rows to the whole of
    ``train``, spares that search where ``train`` is not subsampled. Returns
    ``(share, to_train, to_holdout)``: the last two the DCRs to the whole
    ``train`` and ``holdout``, ``None`` for a set subsampled to equal size.
    """
    whole = (_rows(train), _rows(holdout))
    parts = _equal_sizes(*whole, seed)
    synthetic = _rows(synthetic)
    found = [
        given if given is not None and part is full else dcr(synthetic, part, **search)
        for given, full, part in zip((to_train, None), whole, parts, strict=True)
    ]
    pairs = zip(found, whole, parts, strict=True)
    kept = [d if part is full else None for d, full, part in pairs]
    return _share_closer(*found, tol), *kept


def _equal_sizes(a: np.ndarray, b: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    size = min(len(a), len(b))
    if len(a) > size:
        a = a[np.sort(rng.choice(len(a), size, replace=False))]
    if len(b) > size:
        b = b[np.sort(rng.choice(len(b), size, replace=False))]
    return a, b


def exact_match_rate(synthetic, reference, *, tol: float = EXACT_TOL, **search):
    """Share of synthetic rows within ``tol`` (default 1e-6) of a reference row.

    Args:
      synthetic: ``shape=(n, d)``.
      reference: ``shape=(m, d)``.
      tol: the exact-match tolerance (metric units).
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      The share, in ``[0, 1]``.
    """
    return float(np.mean(dcr(synthetic, reference, **search) <= tol))


def near_duplicate_rate(synthetic, reference, *, delta: float = NEAR_DELTA, **search):
    """Share of synthetic rows within ``delta`` (default 0.1) of a reference row.

    Args:
      synthetic: ``shape=(n, d)``.
      reference: ``shape=(m, d)``.
      delta: the near-duplicate radius (metric units).
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      The share, in ``[0, 1]``.
    """
    return float(np.mean(dcr(synthetic, reference, **search) <= delta))


def duplicate_rate(rows, *, tol: float = EXACT_TOL) -> float:
    """Share of rows that repeat an earlier row of the same set.

    Rows are compared after rounding every coordinate to a multiple of ``tol``;
    this is ``DataFrame.duplicated().mean()`` on the decoded table (a pair of
    identical rows counts once, as one repeat).

    Args:
      rows: ``shape=(n, d)``.
      tol: the rounding grid (metric units).

    Returns:
      ``1 - distinct / n``, in ``[0, 1)``.
    """
    rows = _rows(rows)
    if len(rows) == 0:
        return 0.0
    grid = np.round(rows.astype(np.float64) / tol).astype(np.int64)
    return 1.0 - len(np.unique(grid, axis=0)) / len(rows)


def _attack(member_scores, non_member_scores) -> AttackResult:
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
    scores = np.r_[member_scores, non_member_scores].astype(np.float64)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return AttackResult(
        auc=float(roc_auc_score(labels, scores)),
        tpr_at_1pct_fpr=float(np.max(tpr[fpr <= 0.01])),
    )


def distance_attack(synthetic, members, non_members, **search) -> AttackResult:
    """Membership inference by distance to the closest synthetic row.

    The score of a record is minus its distance to the closest synthetic row: a
    generator that memorizes puts synthetic rows on top of its training rows. Pass
    members (training rows) and non-members (holdout rows) of equal size.

    Args:
      synthetic: ``shape=(n, d)``.
      members: ``shape=(a, d)`` training rows.
      non_members: ``shape=(b, d)`` holdout rows.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      :class:`AttackResult`.
    """
    synthetic = _rows(synthetic)
    return _attack(
        -dcr(members, synthetic, **search), -dcr(non_members, synthetic, **search)
    )


def kde_bandwidth(rows, **search) -> float:
    """A quarter of the median distance of a row to its nearest other row.

    The default kernel width of :func:`density_attack`: narrow enough that the
    kernel of a synthetic row sitting on a patient stands out against the kernels
    of that patient's neighbours (with the full median it does not, and the
    attack misses a generator that copies its rows). Exact repeats are ignored;
    0.25 (a quarter of one category step) when every row repeats another.

    Args:
      rows: ``shape=(n, d)``, ``n >= 2``.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      The bandwidth in metric units.
    """
    rows = _rows(rows)
    second = nearest_neighbors(rows, rows, k=2, **search)[0][:, 1]
    positive = second[second > EXACT_TOL]
    return 0.25 * (float(np.median(positive)) if positive.size else 1.0)


def density_attack(
    synthetic,
    members,
    non_members,
    reference,
    *,
    bandwidth: float | None = None,
    **search,
) -> AttackResult:
    """Membership inference by a density ratio, in the manner of DOMIAS.

    The score of a record ``x`` is ``log p_synth(x) - log p_ref(x)``: a generator
    that overfits puts more synthetic density on its training rows than the
    population has there. Both densities are isotropic Gaussian kernel density
    estimates in the metric space with one shared bandwidth (by default
    :func:`kde_bandwidth` of ``reference``), so their normalizing constants
    cancel. ``reference`` must be real rows disjoint from the members and
    non-members; the audit uses one half of the holdout as reference and the
    other half as non-members.

    Args:
      synthetic: ``shape=(n, d)``.
      members: ``shape=(a, d)`` training rows.
      non_members: ``shape=(b, d)`` holdout rows.
      reference: ``shape=(r, d)`` holdout rows outside ``non_members``.
      bandwidth: kernel standard deviation (metric units); ``None`` for the
        default above.
      **search: block sizes for the kernel sums.

    Returns:
      :class:`AttackResult`.

    References:
      van Breugel, Sun, Qian, van der Schaar, "Membership Inference Attacks against
      Synthetic Data through Overfitting Detection", AISTATS 2023.
    """
    synthetic, reference = _rows(synthetic), _rows(reference)
    if bandwidth is None:
        bandwidth = kde_bandwidth(reference)

    def score(rows):
        rows = _rows(rows)
        return kde_log_density_np(rows, synthetic, bandwidth, **search) - (
            kde_log_density_np(rows, reference, bandwidth, **search)
        )

    return _attack(score(members), score(non_members))


def _column_dims(columns: Sequence[ColumnLike], name: str):
    found = [c for c in columns if c.name == name]
    if not found:
        raise KeyError(f"no metric column named {name!r}")
    dims = np.concatenate([np.arange(c.start, c.start + c.width) for c in found])
    categorical = [c for c in found if c.kind == "categorical"]
    numeric = [c for c in found if c.kind == "numeric"]
    return dims, (categorical[0] if categorical else numeric[0])


def attribute_inference(
    synthetic,
    train,
    holdout,
    columns: Sequence[ColumnLike],
    sensitive: str,
    *,
    k: int = 1,
    max_rows: int = 2000,
    seed: int = 0,
    **search,
) -> AttributeResult:
    """Infer a sensitive column from a patient's other columns via synthetic rows.

    The attacker knows every metric coordinate of a patient except those of the
    sensitive column (for a numeric column, its value and missingness), finds the
    ``k`` synthetic rows nearest on those coordinates and predicts the majority
    category (categorical) or the mean standardized value (numeric). The attack
    runs on training patients and, as the baseline, on as many holdout patients;
    a generator that leaks scores higher on the former. Numeric scores are
    ``1 - SSE / SST`` over patients whose sensitive value is observed.

    Args:
      synthetic: ``shape=(n, d)``.
      train: ``shape=(m, d)`` training rows.
      holdout: ``shape=(h, d)`` holdout rows.
      columns: the metric columns (``enc.metric_space.columns``).
      sensitive: name of the sensitive column.
      k: synthetic neighbours consulted (1, the default, is the strongest attack
        on a generator that copies rows).
      max_rows: at most this many patients of each set are attacked.
      seed: seed of the patient subsample.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      :class:`AttributeResult`.
    """
    synthetic = _rows(synthetic)
    dims, column = _column_dims(columns, sensitive)
    known = np.setdiff1d(np.arange(synthetic.shape[1]), dims)
    train, holdout = _equal_sizes(_rows(train), _rows(holdout), seed)
    train, holdout = train[:max_rows], holdout[:max_rows]
    block = slice(column.start, column.start + column.width)

    def attack(patients):
        index = nearest_neighbors(
            patients[:, known], synthetic[:, known], k=k, extra=1, **search
        ).index
        guess = synthetic[index, block]  # shape=(rows, k, width)
        truth = patients[:, block]
        if column.kind == "categorical":
            votes = guess.sum(axis=1)
            return float(np.mean(votes.argmax(axis=1) == truth.argmax(axis=1)))
        observed = _observed(patients, columns, sensitive)
        y, y_hat = truth[observed, 0], guess[observed, :, 0].mean(axis=1)
        total = np.sum((y - y.mean()) ** 2)
        return float(1.0 - np.sum((y - y_hat) ** 2) / total) if total > 0 else 0.0

    return AttributeResult(column.kind, attack(train), attack(holdout))


def _observed(rows, columns, name) -> np.ndarray:
    for c in columns:
        if c.name == name and c.kind == "missing":
            return rows[:, c.start] < 0.5
    return np.ones(len(rows), bool)


def quantile_gaps(synthetic, real, columns: Sequence[ColumnLike] | None = None):
    """Mean absolute gap of the 19 quantiles 0.05 ... 0.95, per numeric column.

    Quantiles are taken over the observed values of each numeric coordinate of the
    metric space (standardized units); with ``columns=None`` every coordinate
    counts as numeric.

    Args:
      synthetic: ``shape=(n, d)``.
      real: ``shape=(m, d)`` training rows.
      columns: the metric columns, or ``None``.

    Returns:
      ``shape=(c,)`` gaps, one per numeric column observed in both sets.
    """
    synthetic, real = _rows(synthetic), _rows(real)
    if columns is None:
        names = [(None, j) for j in range(real.shape[1])]
    else:
        names = [(c.name, c.start) for c in columns if c.kind == "numeric"]
    gaps = []
    for name, dim in names:
        seen_s = _observed(synthetic, columns or (), name)
        seen_r = _observed(real, columns or (), name)
        if not seen_s.any() or not seen_r.any():
            continue
        q_s = np.quantile(synthetic[seen_s, dim], QUANTILE_LEVELS)
        q_r = np.quantile(real[seen_r, dim], QUANTILE_LEVELS)
        gaps.append(np.mean(np.abs(q_s - q_r)))
    return np.asarray(gaps, np.float64)


def _clip01(x: float) -> float:
    return float(min(max(x, 0.0), 1.0))


def composite_score(
    distances: np.ndarray,
    gaps: np.ndarray,
    duplicate: float,
    exact: float,
) -> CompositeScore:
    """The paper's composite privacy score from precomputed parts.

    ``P = 0.5 DCR_score + 0.3 Qd_score + 0.2 I_score`` with
    ``DCR_score = clip(mean DCR / p95 DCR, 0, 1)``,
    ``Qd_score = clip(1 - Qd / (4 median_c Qd_c), 0, 1)`` (``Qd`` the mean of the
    per-column gaps; 1 when there are no numeric columns or all gaps vanish) and
    ``I_score = clip(1 - I / 0.1, 0, 1)``, ``I = (duplicate + exact) / 2``.

    Args:
      distances: ``shape=(n,)`` DCR of each synthetic row to the training rows.
      gaps: ``shape=(c,)`` per-column quantile gaps (:func:`quantile_gaps`).
      duplicate: within-synthetic duplicate rate.
      exact: synthetic-to-training exact-match rate.

    Returns:
      :class:`CompositeScore`.

    References:
      Ilaty et al., "PSyGenTAB", arXiv 2606.18518 (2026), as in the authors' code.
    """
    p95 = float(np.percentile(distances, 95))
    dcr_part = _clip01(float(np.mean(distances)) / p95) if p95 > 0 else 0.0

    if gaps.size == 0:
        quantile_part = 1.0
    else:
        gap, scale = float(np.mean(gaps)), 4.0 * float(np.median(gaps))
        if scale > 1e-12:
            quantile_part = _clip01(1.0 - gap / scale)
        else:
            quantile_part = 1.0 if gap <= 1e-12 else 0.0

    identity_part = _clip01(1.0 - 0.5 * (duplicate + exact) / 0.10)
    total = 0.5 * dcr_part + 0.3 * quantile_part + 0.2 * identity_part
    return CompositeScore(total, dcr_part, quantile_part, identity_part)


def privacy_score(
    synthetic,
    real,
    columns: Sequence[ColumnLike] | None = None,
    *,
    tol: float = EXACT_TOL,
    **search,
) -> CompositeScore:
    """The paper's composite privacy score ``P`` of synthetic rows (a preset).

    See :func:`composite_score` for the formula; the paper's threshold is
    ``P_min = 0.80``. ``P`` mixes privacy with fidelity (the quantile term rewards
    matching the real marginals), so the audit reports it beside, not instead of,
    the holdout-based figures.

    Args:
      synthetic: ``shape=(n, d)``.
      real: ``shape=(m, d)`` training rows.
      columns: the metric columns (numeric ones enter the quantile term), or
        ``None`` to treat every coordinate as numeric.
      tol: exact-match tolerance.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      :class:`CompositeScore`.
    """
    distances = dcr(synthetic, real, **search)
    return composite_score(
        distances,
        quantile_gaps(synthetic, real, columns),
        duplicate_rate(synthetic, tol=tol),
        float(np.mean(distances <= tol)),
    )


@dataclasses.dataclass(frozen=True)
class PrivacyReport:
    """The exact audit; each figure beside its holdout baseline (``*_holdout``).

    The baseline is the same statistic with holdout rows (real patients the
    generator never saw) in place of synthetic rows. Distances are Euclidean in
    the metric space. Membership attacks have chance level AUC 0.5 and
    TPR 0.01 at 1 % FPR; the ``mia_distance_*_holdout`` figures run the distance
    attack with the reference half of the holdout as the "generator", an
    empirical null (the density attack has none: with the reference as generator
    its score is identically 0). ``attribute_*`` scores are NaN when no sensitive
    column was named.
    """

    n_synthetic: int
    n_train: int
    n_holdout: int
    exact_tol: float
    near_delta: float

    dcr_median: float
    dcr_median_holdout: float
    dcr_median_ratio: float
    dcr_p5: float
    dcr_p5_holdout: float
    dcr_p5_ratio: float
    dcr_share: float
    dcr_share_holdout: float
    nndr_median: float
    nndr_median_holdout: float

    exact_match_rate: float
    exact_match_rate_holdout: float
    near_duplicate_rate: float
    near_duplicate_rate_holdout: float
    duplicate_rate: float
    duplicate_rate_holdout: float

    mia_distance_auc: float
    mia_distance_auc_holdout: float
    mia_distance_tpr_at_1pct_fpr: float
    mia_distance_tpr_at_1pct_fpr_holdout: float
    mia_density_auc: float
    mia_density_tpr_at_1pct_fpr: float

    attribute_column: str
    attribute_kind: str
    attribute_score: float
    attribute_score_holdout: float

    privacy_score: float
    privacy_score_holdout: float
    privacy_dcr_score: float
    privacy_quantile_score: float
    privacy_identity_score: float

    def to_dict(self) -> dict:
        """The report as a flat ``{name: value}`` dict."""
        return dataclasses.asdict(self)


def _safe_ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.inf if a > 0 else math.nan


def audit_privacy(
    synthetic,
    train,
    holdout,
    columns: Sequence[ColumnLike] | None = None,
    *,
    seed: int = 0,
    sensitive: str | None = None,
    exact_tol: float = EXACT_TOL,
    near_delta: float = NEAR_DELTA,
    bandwidth: float | None = None,
    attribute_k: int = 1,
    **search,
) -> PrivacyReport:
    """Run the whole exact audit of synthetic rows.

    Members are training rows, non-members holdout rows. The holdout is shuffled
    (with ``seed``) and halved: the first half is the reference of the density
    attack (and the empirical-null "generator" of the distance attack), the
    second half the non-members; as many training rows are drawn as members.

    Args:
      synthetic: ``shape=(n, d)`` synthetic rows in the metric space
        (``enc.to_metric(decoded)``).
      train: ``shape=(m, d)`` the generator's training rows.
      holdout: ``shape=(h, d)`` real rows the generator never saw, ``h >= 4``.
      columns: ``enc.metric_space.columns``; needed for the attribute attack and
        to restrict the quantile term to numeric columns.
      seed: seed of every subsample and split.
      sensitive: column attacked by attribute inference, or ``None`` to skip it.
      exact_tol: exact-match tolerance (metric units).
      near_delta: near-duplicate radius (metric units).
      bandwidth: kernel width of the density attack (``None``: data-driven).
      attribute_k: neighbours consulted by the attribute attack.
      **search: block sizes for :func:`nearest_neighbors`.

    Returns:
      :class:`PrivacyReport`.
    """
    synthetic, train, holdout = _rows(synthetic), _rows(train), _rows(holdout)
    rng = np.random.default_rng(seed)

    syn_nn = nearest_neighbors(synthetic, train, k=2, **search).distance
    hold_nn = nearest_neighbors(holdout, train, k=2, **search).distance
    syn_dcr, hold_dcr = syn_nn[:, 0], hold_nn[:, 0]
    median = (float(np.median(syn_dcr)), float(np.median(hold_dcr)))
    p5 = (float(np.percentile(syn_dcr, 5)), float(np.percentile(hold_dcr, 5)))

    # Each search runs once: the DCR share reuses the DCR of the synthetic rows to
    # the whole training set, and the distance attack's null reuses the distances
    # of the non-members to the reference half that the DCR share's null found.
    share = _dcr_share(
        synthetic, train, holdout, seed, exact_tol, to_train=syn_dcr, **search
    )[0]
    shuffled = holdout[rng.permutation(len(holdout))]
    half = len(shuffled) // 2
    reference, non_members = shuffled[:half], shuffled[half:]
    share_null, _, non_member_dcr = _dcr_share(
        non_members, train, reference, seed + 1, exact_tol, **search
    )

    members = train[rng.choice(len(train), min(len(train), len(non_members)), False)]
    non_members = non_members[: len(members)]
    distance_mia = distance_attack(synthetic, members, non_members, **search)
    if non_member_dcr is None:  # the share null searched a subsample of reference
        distance_null = distance_attack(reference, members, non_members, **search)
    else:
        distance_null = _attack(
            -dcr(members, reference, **search), -non_member_dcr[: len(members)]
        )
    density_mia = density_attack(
        synthetic, members, non_members, reference, bandwidth=bandwidth, **search
    )

    if sensitive is not None:
        if columns is None:
            raise ValueError("attribute inference needs the metric columns")
        attribute = attribute_inference(
            synthetic,
            train,
            holdout,
            columns,
            sensitive,
            k=attribute_k,
            seed=seed,
            **search,
        )
    else:
        attribute = AttributeResult("", math.nan, math.nan)

    exact = (
        float(np.mean(syn_dcr <= exact_tol)),
        float(np.mean(hold_dcr <= exact_tol)),
    )
    duplicates = (
        duplicate_rate(synthetic, tol=exact_tol),
        duplicate_rate(holdout, tol=exact_tol),
    )
    composite = composite_score(
        syn_dcr, quantile_gaps(synthetic, train, columns), duplicates[0], exact[0]
    )
    composite_null = composite_score(
        hold_dcr, quantile_gaps(holdout, train, columns), duplicates[1], exact[1]
    )

    return PrivacyReport(
        n_synthetic=len(synthetic),
        n_train=len(train),
        n_holdout=len(holdout),
        exact_tol=exact_tol,
        near_delta=near_delta,
        dcr_median=median[0],
        dcr_median_holdout=median[1],
        dcr_median_ratio=_safe_ratio(*median),
        dcr_p5=p5[0],
        dcr_p5_holdout=p5[1],
        dcr_p5_ratio=_safe_ratio(*p5),
        dcr_share=share,
        dcr_share_holdout=share_null,
        nndr_median=float(np.median(_ratio(syn_nn))),
        nndr_median_holdout=float(np.median(_ratio(hold_nn))),
        exact_match_rate=exact[0],
        exact_match_rate_holdout=exact[1],
        near_duplicate_rate=float(np.mean(syn_dcr <= near_delta)),
        near_duplicate_rate_holdout=float(np.mean(hold_dcr <= near_delta)),
        duplicate_rate=duplicates[0],
        duplicate_rate_holdout=duplicates[1],
        mia_distance_auc=distance_mia.auc,
        mia_distance_auc_holdout=distance_null.auc,
        mia_distance_tpr_at_1pct_fpr=distance_mia.tpr_at_1pct_fpr,
        mia_distance_tpr_at_1pct_fpr_holdout=distance_null.tpr_at_1pct_fpr,
        mia_density_auc=density_mia.auc,
        mia_density_tpr_at_1pct_fpr=density_mia.tpr_at_1pct_fpr,
        attribute_column=sensitive or "",
        attribute_kind=attribute.kind,
        attribute_score=attribute.train,
        attribute_score_holdout=attribute.holdout,
        privacy_score=composite.score,
        privacy_score_holdout=composite_null.score,
        privacy_dcr_score=composite.dcr_score,
        privacy_quantile_score=composite.quantile_score,
        privacy_identity_score=composite.identity_score,
    )
