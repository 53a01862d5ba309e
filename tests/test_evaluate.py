"""Utility and fidelity of synthetic tables, checked on the real heart-disease table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

import psygentab_jax as pg
from psygentab_jax._src import evaluate as ev
from tests.conftest import shared_table

TARGET = "disease"


@pytest.fixture(scope="module")
def split():
    df = shared_table("heart_disease_uci")
    train, test = train_test_split(
        df, test_size=0.3, stratify=df[TARGET], random_state=0
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(split):
    return pg.infer_schema(split[0], target=TARGET)


@pytest.fixture(scope="module")
def copied(split, schema):
    """The real training rows used as the synthetic set."""
    train, test = split
    return ev.evaluate(train, test, train.copy(), TARGET, schema=schema, seed=0)


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each column permuted on its own: marginals kept, every dependence destroyed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns}
    )


@pytest.fixture(scope="module")
def shuffled(split, schema):
    train, test = split
    synthetic = _shuffled(train, seed=1)
    return ev.evaluate(
        train, test, synthetic, TARGET, schema=schema, seed=0, baseline=False
    )


def test_real_data_is_useful(copied):
    for model in ev.MODELS:
        assert copied["utility"]["trtr"][model]["roc_auc"] > 0.8
        assert copied["utility"]["trtr"][model]["balanced_accuracy"] > 0.7
    assert copied["utility"]["minority_class"] == "0"
    assert copied["utility"]["classes"] == ["0", "1"]


def test_training_on_the_real_rows_is_tstr_equal_to_trtr(copied):
    utility = copied["utility"]
    assert utility["tstr"] == utility["trtr"]
    for model in ev.MODELS:
        assert utility["ratio"][model] == {"roc_auc": 1.0, "minority_recall": 1.0}
    assert utility["missing_classes"] == {"trtr": [], "tstr": [], "trts": []}


def test_identical_frames_have_zero_distances(copied, split):
    fidelity = copied["fidelity"]
    columns = fidelity["columns"]
    assert {c["kind"] for c in columns.values()} >= {"continuous", "categorical"}
    for entry in columns.values():
        assert entry.get("ks", 0.0) == 0.0
        assert entry.get("missing_gap", 0.0) == 0.0
        assert entry.get("tv", 0.0) == 0.0
    for key in ("ks_mean", "tv_mean", "correlation_gap", "contingency_gap"):
        assert fidelity[key] == 0.0
    assert fidelity["n_pairs"] > 0
    assert set(columns) == set(split[0].columns)


def test_a_disjoint_real_sample_is_undetectable(copied):
    baseline = copied["fidelity_baseline"]
    assert abs(baseline["detection_auc"] - 0.5) < 0.1
    assert 0.0 < baseline["ks_mean"] < 0.15


def test_results_are_plain_json(copied):
    text = json.dumps(copied, allow_nan=False)
    assert json.loads(text) == copied


def test_shuffled_columns_are_caught(shuffled, copied):
    fidelity, utility = shuffled["fidelity"], shuffled["utility"]
    assert fidelity["ks_mean"] == 0.0 and fidelity["tv_mean"] == 0.0
    real_gap = copied["fidelity_baseline"]["correlation_gap"]
    assert fidelity["correlation_gap"] > 2 * real_gap
    assert (
        fidelity["contingency_gap"]
        > 1.5 * copied["fidelity_baseline"]["contingency_gap"]
    )
    assert fidelity["detection_auc"] > 0.75
    for model in ev.MODELS:
        assert (
            utility["tstr"][model]["roc_auc"] < utility["trtr"][model]["roc_auc"] - 0.1
        )
        assert utility["ratio"][model]["roc_auc"] < 0.9
    assert "fidelity_baseline" not in shuffled


@pytest.mark.parametrize("target", ["disease", "cp"])
def test_a_synthetic_set_without_the_minority_class(split, target):
    train, test = split
    counts = train[target].value_counts()
    minority = counts.index[counts == counts.min()][0]
    synthetic = train[train[target] != minority]

    utility = ev.utility(train, test, synthetic, target, seed=0)

    assert utility["minority_class"] == ev.category_labels(pd.Series([minority]))[0]
    assert utility["missing_classes"]["tstr"] == [utility["minority_class"]]
    for model in ev.MODELS:
        tstr = utility["tstr"][model]
        assert tstr["minority_recall"] == 0.0
        assert 0.0 <= tstr["roc_auc"] <= 1.0
        assert 0.0 <= tstr["balanced_accuracy"] <= 1.0
        # The holdout still holds the class, so TRTS cannot score its recall.
        assert utility["trts"][model]["minority_recall"] is None
        ratio = utility["ratio"][model]["minority_recall"]
        if utility["trtr"][model]["minority_recall"] > 0:
            assert ratio == 0.0
        else:  # 0 / 0: no ratio
            assert ratio is None
    if target == "disease":
        # One class left: a constant prediction, as good as a coin toss.
        assert utility["tstr"]["logistic"]["roc_auc"] == 0.5


def test_identifiers_and_constants_are_dropped(split):
    train, test = split
    train = train.assign(record_id=np.arange(len(train)), site="one")
    synthetic = train.assign(record_id=np.arange(len(train)) + 10_000)
    schema = ev.resolve_schema(train, None, TARGET)
    assert schema["record_id"].kind == "identifier"

    fidelity = ev.fidelity(train, synthetic, schema=schema, detection=False)
    assert "record_id" not in fidelity["columns"]
    assert "site" not in fidelity["columns"]
    assert fidelity["ks_mean"] == 0.0
    assert fidelity["detection_auc"] is None


def test_datetime_columns_are_compared_as_numbers():
    days = pd.date_range("2020-01-01", periods=200, freq="D")
    real = pd.DataFrame({"visit": days.strftime("%Y-%m-%d"), "x": np.arange(200) + 0.5})
    later = pd.DataFrame(
        {"visit": (days + pd.Timedelta(days=100)).strftime("%Y-%m-%d"), "x": real["x"]}
    )
    # Every date is distinct, so inference takes it for a key; say what it is.
    with pytest.warns(UserWarning, match="identifier"):
        schema = pg.infer_schema(real).with_kinds(visit="datetime")
    fidelity = ev.fidelity(real, later, schema=schema, detection=False)
    assert fidelity["columns"]["visit"]["ks"] == pytest.approx(0.5)
    assert fidelity["columns"]["x"]["ks"] == 0.0


def test_ks_statistic_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    b = np.round(rng.normal(0.3, 1.2, size=170), 1)  # ties included
    assert ev.ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert ev.ks_statistic(a, a) == 0.0
    assert ev.ks_statistic(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert ev.ks_statistic(np.array([]), a) == 1.0


def test_total_variation_and_labels():
    a = np.array(["x", "x", "y"], dtype=object)
    b = np.array(["x", "y", "y"], dtype=object)
    assert ev.total_variation(a, b) == pytest.approx(1 / 3)
    assert ev.total_variation(a, np.array(["z"], dtype=object)) == 1.0
    mixed = pd.Series([1, 1.0, np.int8(1), np.nan, True, "a"], dtype=object)
    assert list(ev.category_labels(mixed)) == ["1", "1", "1", ev.MISSING, "True", "a"]
    floats = ev.category_labels(pd.Series([0.0, 2.0, np.nan]))
    assert list(floats) == ["0", "2", ev.MISSING]


def test_a_missing_target_column_is_named(split):
    train, test = split
    with pytest.raises(pg.SchemaError, match="synthetic frame lacks the target"):
        ev.utility(train, test, train.drop(columns=TARGET), TARGET)
