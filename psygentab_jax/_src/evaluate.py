"""How useful and how faithful a synthetic table is, measured against real patients.

An adapter-level module (pandas and scikit-learn). Three frames with the same
columns go in: the real training rows the synthesizer learned from, the real
holdout rows it never saw, and the synthetic rows. Two families of numbers come out.

* :func:`utility` trains downstream classifiers for the target column under three
  schemes: TRTR (train on real train, test on the holdout), TSTR (train on
  synthetic, test on the holdout) and TRTS (train on real train, test on
  synthetic). TSTR close to TRTR is what a user of the synthetic table hopes for.
* :func:`fidelity` compares the synthetic rows with real ones column by column
  (Kolmogorov-Smirnov, total variation), pair by pair (correlation and contingency
  gaps) and as whole rows (a classifier that tries to tell them apart).

Identifier and constant columns are dropped from every measurement. Every number is
a plain ``float`` (or ``None`` where it is undefined), so the results serialize to
JSON as they stand.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from psygentab_jax._src.schema import Schema, SchemaError, infer_schema

NUMERIC_KINDS = ("continuous", "integer", "datetime")
SCHEMES = ("trtr", "tstr", "trts")
MODELS = ("logistic", "gradient_boosting")
# The level that stands for a missing value in a categorical column.
MISSING = "<missing>"
# HistGradientBoosting accepts at most 255 categories per feature.
MAX_TREE_CATEGORIES = 254
DETECTION_FOLDS = 5


# --------------------------------------------------------------------------- #
# Columns and values
# --------------------------------------------------------------------------- #


def resolve_schema(
    real: pd.DataFrame, schema: Schema | None, target: str | None = None
) -> Schema:
    """The given schema, or one inferred from the real frame.

    Args:
      real: the real (training) frame.
      schema: a schema to use as it is, or ``None`` to infer one.
      target: the target column, passed to :func:`infer_schema`.

    Returns:
      The schema.
    """
    if schema is not None:
        return schema
    with warnings.catch_warnings():
        # infer_schema names identifiers in a warning; here they are just dropped.
        warnings.simplefilter("ignore")
        return infer_schema(real, target=target)


def split_columns(
    schema: Schema, real: pd.DataFrame, *, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """The numeric and the categorical columns that take part in an evaluation.

    Identifier and constant columns (by schema kind, or holding a single value,
    missing included, in ``real``) are left out, and so are the names in
    ``exclude``.

    Args:
      schema: the table's schema.
      real: the real frame the columns are checked against.
      exclude: further columns to leave out (e.g. the target).

    Returns:
      ``(numeric, categorical)`` column names in schema order.

    Raises:
      SchemaError: ``real`` lacks a schema column.
    """
    numeric, categorical = [], []
    for spec in schema.columns:
        if spec.kind in ("identifier", "constant") or spec.name in exclude:
            continue
        if spec.name not in real.columns:
            raise SchemaError(f"the table lacks schema column {spec.name!r}")
        if real[spec.name].nunique(dropna=False) <= 1:
            continue
        if spec.kind in NUMERIC_KINDS:
            numeric.append(spec.name)
        else:
            categorical.append(spec.name)
    return numeric, categorical


def numeric_values(series: pd.Series, kind: str = "continuous") -> np.ndarray:
    """A column as float64 with NaN for missing; datetimes in days since 1970.

    Args:
      series: the column.
      kind: its schema kind.

    Returns:
      A float64 array of the column's length.
    """
    if kind == "datetime":
        stamps = pd.to_datetime(series, errors="coerce", format="ISO8601")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        days = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        return np.asarray(days.to_numpy(dtype=np.float64, na_value=np.nan))
    values = pd.to_numeric(series, errors="coerce")
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


def _label(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return MISSING
        return str(int(number)) if number.is_integer() else repr(number)
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    return str(value)


def category_labels(series: pd.Series) -> np.ndarray:
    """A categorical column as text labels, with missing as the level ``MISSING``.

    Numbers are written the same way whatever their dtype (``1``, ``1.0`` and
    ``np.int8(1)`` all become ``"1"``), so a synthetic column decoded to another
    dtype still matches its real counterpart.

    Args:
      series: the column.

    Returns:
      An object array of strings.
    """
    return np.array([_label(v) for v in series.to_numpy(dtype=object)], dtype=object)


def _thread_limit(threads: int | None):
    """Cap the OpenMP threads of the tree models (``None``: leave them alone).

    The tables here are small; on a machine shared with other jobs, OpenMP threads
    that wait for busy cores make a fit many times slower than one thread does.
    """
    if threads is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="openmp")


def _plain(value):
    """Numbers as plain floats (``None`` for NaN), recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return None if not math.isfinite(number) else number
    return value


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _features(
    frame: pd.DataFrame, schema: Schema, numeric: list[str], categorical: list[str]
) -> pd.DataFrame:
    """Numeric columns as float64, categorical columns as text labels."""
    columns = {name: numeric_values(frame[name], schema[name].kind) for name in numeric}
    columns |= {name: category_labels(frame[name]) for name in categorical}
    return pd.DataFrame(columns, index=frame.index)


# --------------------------------------------------------------------------- #
# Utility: TRTR, TSTR, TRTS
# --------------------------------------------------------------------------- #


class _OneClass:
    """Stands in for a classifier when the training set holds a single class."""

    def __init__(self, label: str):
        self.classes_ = np.array([label], dtype=object)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.ones((len(x), 1))


def _logistic(
    numeric: list[str], categorical: list[str], *, balanced: bool, seed: int
) -> Pipeline:
    parts = []
    if numeric:
        scale = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
        )
        parts.append(("numeric", scale, numeric))
    if categorical:
        parts.append(
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)
        )
    model = LogisticRegression(
        max_iter=5000,
        class_weight="balanced" if balanced else None,
        random_state=seed,
    )
    return Pipeline([("encode", ColumnTransformer(parts)), ("model", model)])


def _ordinal() -> OrdinalEncoder:
    return OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        max_categories=MAX_TREE_CATEGORIES,
        dtype=np.float64,
    )


def _boosting(
    numeric: list[str], categorical: list[str], *, balanced: bool, seed: int
) -> Pipeline:
    parts = []
    if numeric:
        parts.append(("numeric", "passthrough", numeric))
    if categorical:
        parts.append(("categorical", _ordinal(), categorical))
    mask = [False] * len(numeric) + [True] * len(categorical)
    # With scikit-learn's defaults (learning rate 0.1, no L2 penalty) the boosting
    # diverges on targets with many rare classes: on thyroid's 32 diagnoses it fits
    # worse than predicting the majority class. A smaller step and an L2 penalty
    # on the leaf values keep it stable.
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        l2_regularization=1.0,
        categorical_features=mask if categorical else None,
        class_weight="balanced" if balanced else None,
        random_state=seed,
    )
    return Pipeline([("encode", ColumnTransformer(parts)), ("model", model)])


def _fit(name: str, x: pd.DataFrame, y: np.ndarray, columns, *, balanced, seed):
    if len(np.unique(y)) < 2:
        return _OneClass(y[0])
    build = _logistic if name == "logistic" else _boosting
    model = build(*columns, balanced=balanced, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model


def _probabilities(model, x: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Class probabilities over all ``classes`` (0 for classes the model lacks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = model.predict_proba(x)
    full = np.zeros((len(x), len(classes)))
    index = {label: i for i, label in enumerate(classes)}
    for j, label in enumerate(model.classes_):
        full[:, index[label]] = proba[:, j]
    return full


def _scores(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], minority: str
) -> dict[str, float | None]:
    """ROC-AUC (macro one-vs-rest), balanced accuracy and the minority recall.

    Each class present in ``y_true`` (with some rows outside it) contributes its
    one-vs-rest AUC; for two classes this is the usual binary AUC. A class the
    model never saw has probability 0 everywhere and scores as a coin toss would.
    """
    y_pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    aucs, recalls = [], {}
    for i, label in enumerate(classes):
        positive = y_true == label
        if not positive.any():
            continue
        recalls[label] = float(np.mean(y_pred[positive] == label))
        if not positive.all():
            aucs.append(float(roc_auc_score(positive, proba[:, i])))
    return {
        "roc_auc": _mean(aucs),
        "balanced_accuracy": _mean(list(recalls.values())),
        "minority_recall": recalls.get(minority),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator / denominator)


def utility(
    train: pd.DataFrame,
    test: pd.DataFrame,
    synthetic: pd.DataFrame,
    target: str,
    *,
    schema: Schema | None = None,
    seed: int = 0,
    balanced: bool = False,
    threads: int | None = 1,
) -> dict:
    """Downstream utility of the synthetic table: TRTR, TSTR and TRTS.

    Two classifiers are trained per scheme: a logistic regression (median-imputed,
    standardized numbers with missing indicators; one-hot categories, unseen ones
    ignored) and a histogram gradient-boosted tree ensemble (missing numbers handled
    natively; categories ordinal-encoded and split as categories). Categorical
    missing values are a level of their own. Rows whose target is missing are left
    out. A training set holding a single class yields a constant prediction; classes
    absent from a training set are listed under ``"missing_classes"`` and get
    probability 0, so their one-vs-rest AUC is that of a coin toss and their recall
    is 0.

    Args:
      train: real rows the synthesizer was trained on.
      test: real holdout rows it never saw.
      synthetic: synthetic rows.
      target: the class column.
      schema: the table's schema; inferred from ``train`` when ``None``.
      seed: seeds both classifiers.
      balanced: train with ``class_weight="balanced"``.
      threads: OpenMP threads for the classifiers; ``None`` keeps the default.

    Returns:
      ``{scheme: {model: {metric: value}}}`` for schemes ``"trtr"``, ``"tstr"``,
      ``"trts"``, models ``"logistic"``, ``"gradient_boosting"`` and metrics
      ``"roc_auc"`` (binary, or macro one-vs-rest over the classes present in the
      evaluation set), ``"balanced_accuracy"``, ``"minority_recall"`` (recall of
      the least frequent class of ``train``); plus ``"ratio"``:
      ``{model: {"roc_auc", "minority_recall"}}`` = TSTR / TRTR, and the context
      ``"target"``, ``"classes"``, ``"minority_class"``, ``"n_rows"``
      ``{"train", "test", "synthetic"}`` and ``"missing_classes"`` ``{scheme:
      [classes absent from its training set]}``. Undefined values are ``None``.

    Raises:
      SchemaError: the target is unknown or a frame lacks a schema column.
      ValueError: the real training rows hold fewer than two classes.
    """
    schema = resolve_schema(train, schema, target)
    for name, frame in (("train", train), ("test", test), ("synthetic", synthetic)):
        if target not in frame.columns:
            raise SchemaError(f"{name} frame lacks the target column {target!r}")
    columns = split_columns(schema, train, exclude=[target])

    data = {}
    for name, frame in (("train", train), ("test", test), ("synthetic", synthetic)):
        labels = category_labels(frame[target])
        keep = labels != MISSING
        data[name] = (_features(frame[keep], schema, *columns), labels[keep])
    real_labels = data["train"][1]
    if len(np.unique(real_labels)) < 2:
        raise ValueError(f"target {target!r} has fewer than two classes in train")
    counts = pd.Series(real_labels).value_counts()
    minority = sorted(counts.index[counts == counts.min()])[0]
    classes = sorted(set(itertools.chain(*(y for _, y in data.values()))))

    plan = {"trtr": ("train", "test"), "tstr": ("synthetic", "test")}
    plan["trts"] = ("train", "synthetic")
    results: dict = {}
    fitted: dict = {}
    for scheme, (source, sink) in plan.items():
        results[scheme] = {}
        for model_name in MODELS:
            key = (source, model_name)
            if key not in fitted:
                x, y = data[source]
                if len(y) == 0:
                    raise ValueError(f"the {source} frame has no labelled rows")
                with _thread_limit(threads):
                    fitted[key] = _fit(
                        model_name, x, y, columns, balanced=balanced, seed=seed
                    )
            x_eval, y_eval = data[sink]
            with _thread_limit(threads):
                proba = _probabilities(fitted[key], x_eval, classes)
            results[scheme][model_name] = _scores(y_eval, proba, classes, minority)

    results["ratio"] = {
        model_name: {
            metric: _ratio(
                results["tstr"][model_name][metric], results["trtr"][model_name][metric]
            )
            for metric in ("roc_auc", "minority_recall")
        }
        for model_name in MODELS
    }
    trained_on = {s: set(data[source][1]) for s, (source, _) in plan.items()}
    results["missing_classes"] = {
        s: [c for c in sorted(set(real_labels)) if c not in trained_on[s]] for s in plan
    }
    results["target"] = target
    results["classes"] = classes
    results["minority_class"] = minority
    results["n_rows"] = {name: len(y) for name, (_, y) in data.items()}
    return _plain(results)


# --------------------------------------------------------------------------- #
# Fidelity
# --------------------------------------------------------------------------- #


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the ECDFs.

    Args:
      a: the first sample (no NaN).
      b: the second sample (no NaN).

    Returns:
      A value in [0, 1]; 0 when either sample is empty and the other too, 1 when
      exactly one of them is.
    """
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else 1.0
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    gap = np.searchsorted(a, grid, side="right") / len(a)
    gap -= np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between the empirical distributions of two samples.

    Args:
      a: labels of the first sample (hashable values, e.g. from
        :func:`category_labels`).
      b: labels of the second sample.

    Returns:
      Half the L1 distance between the frequency tables, in [0, 1].
    """
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else 1.0
    p = pd.Series(a).value_counts(normalize=True)
    q = pd.Series(b).value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return float(0.5 * np.abs(p - q).sum())


def correlation_matrix(values: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlations of numeric columns on pairwise-complete rows.

    Args:
      values: float columns with NaN for missing.

    Returns:
      The correlation matrix; NaN where a pair shares fewer than 3 rows or one
      column is constant on them.
    """
    return values.corr(method="pearson", min_periods=3)


def _pair_codes(frame: pd.DataFrame, a: str, b: str) -> np.ndarray:
    return (frame[a].astype(str) + "\x1f" + frame[b].astype(str)).to_numpy()


def _detection_features(
    real: pd.DataFrame, synthetic: pd.DataFrame, numeric, categorical
) -> tuple[pd.DataFrame, list[bool]]:
    """Both frames stacked, categories as shared integer codes."""
    both = pd.concat([real, synthetic], ignore_index=True)
    mask = [False] * len(numeric)
    for name in categorical:
        codes = pd.Categorical(both[name]).codes.astype(np.float64)
        both[name] = codes
        mask.append(codes.max(initial=0) < MAX_TREE_CATEGORIES)
    return both[numeric + categorical], mask


def detection_auc(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    schema: Schema,
    seed: int = 0,
    max_rows: int = 5000,
    threads: int | None = 1,
) -> float | None:
    """How well a classifier tells real rows from synthetic ones (0.5: not at all).

    Draws the same number of rows from each frame (at most ``max_rows`` each),
    trains a histogram gradient-boosted classifier to predict "synthetic" and
    returns the mean ROC-AUC over 5 stratified folds.

    Args:
      real: real rows.
      synthetic: synthetic rows.
      schema: the table's schema (identifier and constant columns are dropped).
      seed: seeds the row draw, the folds and the classifier.
      max_rows: rows drawn from each frame at most.
      threads: OpenMP threads for the classifier; ``None`` keeps the default.

    Returns:
      The cross-validated ROC-AUC, or ``None`` when a frame has fewer than
      ``DETECTION_FOLDS`` rows or no column is left.
    """
    numeric, categorical = split_columns(schema, real)
    n = min(len(real), len(synthetic), max_rows)
    if n < DETECTION_FOLDS or not numeric + categorical:
        return None
    rng = np.random.default_rng(seed)
    real = real.iloc[np.sort(rng.choice(len(real), n, replace=False))]
    synthetic = synthetic.iloc[np.sort(rng.choice(len(synthetic), n, replace=False))]
    x, mask = _detection_features(
        _features(real, schema, numeric, categorical),
        _features(synthetic, schema, numeric, categorical),
        numeric,
        categorical,
    )
    y = np.repeat([0, 1], n)

    folds = StratifiedKFold(DETECTION_FOLDS, shuffle=True, random_state=seed)
    aucs = []
    for fit_rows, score_rows in folds.split(x, y):
        # Shallow, slow-learning trees: on a few hundred rows of two samples from
        # one population, a flexible model's fold AUCs scatter widely around 0.5.
        model = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=100,
            max_leaf_nodes=8,
            min_samples_leaf=20,
            categorical_features=mask if any(mask) else None,
            random_state=seed,
        )
        with _thread_limit(threads):
            model.fit(x.iloc[fit_rows], y[fit_rows])
            score = model.predict_proba(x.iloc[score_rows])[:, 1]
        aucs.append(roc_auc_score(y[score_rows], score))
    return float(np.mean(aucs))


def fidelity(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    schema: Schema | None = None,
    seed: int = 0,
    max_pairs: int = 200,
    detection: bool = True,
    threads: int | None = 1,
) -> dict:
    """How closely the synthetic rows follow the real ones' distribution.

    Per column: for numeric kinds (continuous, integer, datetime) the two-sample
    Kolmogorov-Smirnov statistic on the non-missing values plus the gap between
    missing rates; for categorical columns the total variation distance, with
    missing as a level of its own. Per pair: the mean absolute difference of the
    Pearson correlation matrices of the numeric columns (pairwise-complete rows),
    and the mean total variation between the joint frequency tables of pairs of
    categorical columns (at most ``max_pairs`` pairs, chosen by a fixed draw when
    there are more). Whole rows: :func:`detection_auc`.

    Args:
      real: real rows.
      synthetic: synthetic rows with the same columns.
      schema: the table's schema; inferred from ``real`` when ``None``.
      seed: seeds the detection classifier and its row draw.
      max_pairs: the most categorical pairs compared.
      detection: run the detection classifier (else its value is ``None``).
      threads: OpenMP threads for the detection classifier.

    Returns:
      ``{"columns": {name: {"kind", "ks", "missing_gap"} or {"kind", "tv"}},
      "ks_mean", "missing_gap_mean", "tv_mean", "correlation_gap",
      "contingency_gap", "n_pairs", "detection_auc"}``; a mean over no columns is
      ``None``.

    Raises:
      SchemaError: a frame lacks a schema column.
    """
    schema = resolve_schema(real, schema, schema.target if schema else None)
    numeric, categorical = split_columns(schema, real)
    for name in numeric + categorical:
        if name not in synthetic.columns:
            raise SchemaError(f"the synthetic frame lacks column {name!r}")
    x_real = _features(real, schema, numeric, categorical)
    x_synthetic = _features(synthetic, schema, numeric, categorical)

    columns: dict[str, dict] = {}
    for name in numeric:
        a, b = x_real[name].to_numpy(), x_synthetic[name].to_numpy()
        columns[name] = {
            "kind": schema[name].kind,
            "ks": ks_statistic(a[~np.isnan(a)], b[~np.isnan(b)]),
            "missing_gap": abs(float(np.isnan(a).mean() - np.isnan(b).mean()))
            if len(a) and len(b)
            else None,
        }
    for name in categorical:
        columns[name] = {
            "kind": schema[name].kind,
            "tv": total_variation(
                x_real[name].to_numpy(), x_synthetic[name].to_numpy()
            ),
        }

    correlation_gap = None
    if len(numeric) >= 2:
        gap = np.abs(
            correlation_matrix(x_real[numeric])
            - correlation_matrix(x_synthetic[numeric])
        ).to_numpy()
        upper = gap[np.triu_indices(len(numeric), k=1)]
        correlation_gap = _mean(upper.tolist())

    pairs = list(itertools.combinations(categorical, 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(0)
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), max_pairs, False))]
    contingency = [
        total_variation(_pair_codes(x_real, a, b), _pair_codes(x_synthetic, a, b))
        for a, b in pairs
    ]

    return _plain(
        {
            "columns": columns,
            "ks_mean": _mean([c["ks"] for c in columns.values() if "ks" in c]),
            "missing_gap_mean": _mean(
                [c["missing_gap"] for c in columns.values() if "ks" in c]
            ),
            "tv_mean": _mean([c["tv"] for c in columns.values() if "tv" in c]),
            "correlation_gap": correlation_gap,
            "contingency_gap": _mean(contingency),
            "n_pairs": len(pairs),
            "detection_auc": detection_auc(
                real, synthetic, schema=schema, seed=seed, threads=threads
            )
            if detection
            else None,
        }
    )


def evaluate(
    train: pd.DataFrame,
    test: pd.DataFrame,
    synthetic: pd.DataFrame,
    target: str,
    *,
    schema: Schema | None = None,
    seed: int = 0,
    balanced: bool = False,
    baseline: bool = True,
    threads: int | None = 1,
) -> dict:
    """Utility and fidelity of a synthetic table, as one JSON-ready dict.

    Fidelity compares the synthetic rows with the real training rows. With
    ``baseline`` it is also measured between the real training and holdout rows,
    the level that a fresh sample of real patients reaches.

    Args:
      train: real rows the synthesizer was trained on.
      test: real holdout rows.
      synthetic: synthetic rows.
      target: the class column.
      schema: the table's schema; inferred from ``train`` when ``None``.
      seed: seeds every classifier and draw.
      balanced: train the utility classifiers with balanced class weights.
      baseline: also compute ``"fidelity_baseline"`` (train vs holdout).
      threads: OpenMP threads for the tree models; ``None`` keeps the default.

    Returns:
      ``{"utility": utility(...), "fidelity": fidelity(train, synthetic),
      "fidelity_baseline": fidelity(train, test)}`` (the last only with
      ``baseline``), holding only plain floats, ints, strings, lists, dicts and
      ``None``.
    """
    schema = resolve_schema(train, schema, target)
    common = {"schema": schema, "seed": seed, "threads": threads}
    results = {
        "utility": utility(train, test, synthetic, target, balanced=balanced, **common),
        "fidelity": fidelity(train, synthetic, **common),
    }
    if baseline:
        results["fidelity_baseline"] = fidelity(train, test, **common)
    return results
