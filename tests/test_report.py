"""The HTML report: self-contained, escaped, beside its JSON, and never half-written."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

import psygentab_jax as pg
from psygentab_jax._src import evaluate as ev
from psygentab_jax._src import report
from tests.conftest import shared_table

TARGET = "disease"
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
ODD_COLUMN = "chol $<&>"
TITLE = "<script>alert('x')</script> & co"


@pytest.fixture(scope="module")
def frames():
    df = shared_table("heart_disease_uci").rename(columns={"chol": ODD_COLUMN})
    train, test = train_test_split(
        df, test_size=0.3, stratify=df[TARGET], random_state=0
    )
    rng = np.random.default_rng(3)
    synthetic = pd.DataFrame(
        {c: train[c].to_numpy()[rng.permutation(len(train))] for c in train.columns}
    )
    return train, test, synthetic


@pytest.fixture(scope="module")
def results(frames):
    train, test, synthetic = frames
    schema = pg.infer_schema(train, target=TARGET)
    out = ev.evaluate(
        train, test, synthetic, TARGET, schema=schema, seed=0, baseline=False
    )
    # The holdout column of the fidelity table, without a second detection fit.
    out["fidelity_baseline"] = ev.fidelity(train, test, schema=schema, detection=False)
    out["privacy"] = {
        "exact_match_rate": {"value": 0.0, "baseline": 0.0},
        "dcr_median": {"value": 1.234567, "baseline": 1.3},
        "membership_auc": {"value": 0.5123, "baseline": 0.5},
    }
    out["constraints"] = [
        {"name": 'dcr<5% & "near"', "threshold": 0.05, "value": 0.031, "met": True},
        {"name": "membership_auc", "threshold": 0.55, "value": 0.61, "met": False},
    ]
    return out


def _extras():
    rng = np.random.default_rng(0)
    epochs = list(range(1, 11))
    history = {
        "epoch": epochs,
        "utility": list(np.linspace(0.5, 0.8, 10)),
        "violation": {"dcr": list(np.linspace(0.2, 0.0, 10)), "mia": [0.1] * 10},
        "multiplier": {"dcr": list(np.linspace(0, 2, 10)), "mia": [0.5] * 10},
        "penalty": {"dcr": list(np.geomspace(1, 1e4, 10)), "mia": [1.0] * 10},
    }
    frontier = {
        "points": [
            {"label": "ours", "privacy": 0.9, "utility": 0.70, "threshold": 0.9},
            {"label": "ours", "privacy": 0.7, "utility": 0.80, "threshold": 0.7},
            {"label": "ours", "privacy": 0.8, "utility": 0.76, "threshold": 0.8},
            {"label": "CTGAN <peer>", "privacy": 0.6, "utility": 0.74},
        ],
        "x_label": "1 - membership AUC",
        "y_label": "TSTR ROC-AUC",
    }
    dcr = {"synthetic": rng.gamma(3.0, 0.5, 500), "holdout": rng.gamma(3.0, 0.45, 276)}
    return dcr, history, frontier


def _write(path, results, frames, **extras):
    train, _, synthetic = frames
    return report.write_report(
        path, results, real=train, synthetic=synthetic, title=TITLE, **extras
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory, frames, results):
    """One full report: every section and figure, written once for several tests."""
    folder = tmp_path_factory.mktemp("report")
    dcr, history, frontier = _extras()
    path = _write(
        folder / "report.html",
        results,
        frames,
        dcr=dcr,
        history=history,
        frontier=frontier,
    )
    numbers = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return folder, path.read_text(encoding="utf-8"), numbers, (dcr, history)


def test_full_report_is_one_self_contained_file(written):
    folder, text, _, _ = written
    images = IMAGE.findall(text)
    assert len(images) == 5  # marginals, correlations, dcr, history, frontier
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert text.count('<img src="data:image/png;base64,') == 5
    assert "<script" not in text and "<link" not in text and "http" not in text
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]

    for heading in ("Constraints", "Privacy audit", "Utility", "Fidelity"):
        assert f"<h2>{heading}</h2>" in text
    assert "ALM trajectories" in text and "Privacy-utility frontier" in text


def test_text_is_escaped(written):
    _, text, _, _ = written
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
    assert "dcr&lt;5% &amp; &quot;near&quot;" in text
    assert "chol $&lt;&amp;&gt;" in text
    assert "CTGAN &lt;peer&gt;" in text
    assert "<script>" not in text and ODD_COLUMN not in text


def test_json_holds_the_same_numbers(written, results):
    _, text, numbers, (dcr, history) = written
    assert numbers["title"] == TITLE
    assert numbers["results"]["utility"] == results["utility"]
    assert numbers["results"]["fidelity"] == results["fidelity"]
    assert numbers["results"]["constraints"] == results["constraints"]
    assert numbers["history"]["penalty"]["dcr"] == pytest.approx(
        history["penalty"]["dcr"]
    )
    median = numbers["dcr"]["synthetic"]["median"]
    assert median == pytest.approx(np.median(dcr["synthetic"]))
    shown = [
        median,
        numbers["dcr"]["holdout"]["p95"],
        results["utility"]["tstr"]["logistic"]["roc_auc"],
        results["utility"]["ratio"]["gradient_boosting"]["minority_recall"],
        results["fidelity"]["detection_auc"],
        results["fidelity"]["correlation_gap"],
        results["fidelity"]["columns"][ODD_COLUMN]["ks"],
        results["privacy"]["dcr_median"]["value"],
    ]
    for value in shown:
        assert f"<td>{format(value, '.4g')}</td>" in text
    assert '<span class="unmet">not met</span>' in text


def test_missing_sections_are_left_out(tmp_path, frames):
    train, _, synthetic = frames
    path = report.write_report(
        tmp_path / "bare.html", {}, real=train, synthetic=synthetic, max_columns=4
    )
    text = path.read_text(encoding="utf-8")
    assert len(IMAGE.findall(text)) == 2  # marginals and correlations only
    assert "The first 4 of 15 columns" in text
    for heading in ("Constraints", "Privacy audit", "Utility", "Fidelity", "ALM"):
        assert heading not in text
    assert json.loads((tmp_path / "bare.json").read_text())["results"] == {}


def test_a_failure_leaves_no_file(tmp_path, frames, results, monkeypatch):
    dcr, history, _ = _extras()
    path = tmp_path / "report.html"

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    with monkeypatch.context() as patch:
        patch.setattr(report, "dcr_figure", broken)
        with pytest.raises(RuntimeError, match="plotting failed"):
            _write(path, results, frames, dcr=dcr)
    assert list(tmp_path.iterdir()) == []

    _write(path, results, frames, max_columns=2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    history["multiplier"]["dcr"] = history["multiplier"]["dcr"][:-1]
    with pytest.raises(ValueError, match=r"multiplier\[dcr\] has 9 values"):
        _write(path, results, frames, history=history)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
