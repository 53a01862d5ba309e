"""``exact_match == 0`` under pressure: real tables, and rows common to many patients.

No synthetic row may equal a training row on the learned columns. The check is
made three ways: as the sampler does it (row hashes of the decoded values), by a
plain pandas merge on rounded values, and in the audit's metric space (distance
above the audit's exact-match tolerance).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import psygentab_jax as pg
from psygentab_jax import cli
from psygentab_jax._src.constraints import EXACT_TOL
from tests.conftest import TABLES, shared_table

MAX_ROWS = 400


def fit(df: pd.DataFrame, constraints) -> pg.Synthesizer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pg.Synthesizer(epochs=1, seed=0).fit(df, constraints=constraints)


def learned(synth: pg.Synthesizer) -> list[str]:
    return [
        c.name
        for c in synth.encoder.schema.columns
        if c.kind not in ("identifier", "constant")
    ]


def matches_by_hash(synthetic, train, columns) -> int:
    """Synthetic rows whose hashed values equal a training row's (as the sampler)."""
    hashed = pd.util.hash_pandas_object(synthetic[columns], index=False).to_numpy()
    real = pd.util.hash_pandas_object(train[columns], index=False).to_numpy()
    return int(np.isin(hashed, real).sum())


def matches_by_value(synthetic, train, columns) -> int:
    """Synthetic rows equal to a training row after rounding numbers to 6 places.

    Dtypes are evened out first (an integer column decoded as floats still
    matches), so this catches a copy that the hashes would miss.
    """

    def plain(frame):
        out = {}
        for name in columns:
            series = frame[name]
            numeric = pd.api.types.is_numeric_dtype(series)
            if numeric and not pd.api.types.is_bool_dtype(series):
                series = series.astype("float64").round(6)
            out[name] = series.astype(object).where(series.notna(), "<missing>")
            out[name] = out[name].astype(str)
        return pd.DataFrame(out)

    real = plain(train).drop_duplicates()
    return len(plain(synthetic).merge(real, on=columns, how="inner"))


def nearest_distance(synth, synthetic, train) -> float:
    """Smallest distance of a synthetic row to a training row (metric space)."""
    syn_m, train_m = synth.metric_views(synthetic, train)
    gaps = syn_m.astype(np.float64)[:, None, :] - train_m.astype(np.float64)[None]
    return float(np.sqrt((gaps**2).sum(axis=-1)).min())


def assert_no_copies(synth, synthetic, train):
    columns = learned(synth)
    assert matches_by_hash(synthetic, train, columns) == 0
    assert matches_by_value(synthetic, train, columns) == 0
    assert nearest_distance(synth, synthetic, train) > EXACT_TOL


@pytest.mark.parametrize("name", TABLES)
def test_no_training_row_is_emitted_on_shared_tables(name):
    df = shared_table(name)
    df = df.sample(n=min(MAX_ROWS, len(df)), random_state=0).reset_index(drop=True)
    synth = fit(df, ["exact_match == 0"])
    train = synth.attach_data(df)["train"]
    synthetic = synth.sample(len(train), seed=0)
    assert len(synthetic) == len(train)
    assert_no_copies(synth, synthetic, train)


def common_rows() -> pd.DataFrame:
    """300 patients sharing 5 coded rows: 5 of the 8 possible rows are real."""
    distinct = pd.DataFrame(
        {
            "sex": ["F", "F", "M", "M", "F"],
            "smoker": ["no", "yes", "no", "yes", "no"],
            "diabetes": ["no", "no", "no", "yes", "yes"],
        }
    )
    picks = np.random.default_rng(0).integers(0, len(distinct), 300)
    return distinct.iloc[picks].reset_index(drop=True)


def test_rows_common_to_many_patients_are_never_emitted():
    df = common_rows()
    guarded = fit(df, ["exact_match == 0"])
    train = guarded.attach_data(df)["train"]
    synthetic = guarded.sample(len(train), seed=0)
    assert len(synthetic) == len(train)
    assert_no_copies(guarded, synthetic, train)

    # The check has teeth: without the constraint the same kind of generator
    # emits the common rows, and every measure sees them.
    free = fit(df, [])
    copies = free.sample(len(train), seed=0)
    columns = learned(free)
    assert matches_by_hash(copies, train, columns) > 0
    assert matches_by_value(copies, train, columns) > 0
    assert nearest_distance(free, copies, train) <= EXACT_TOL


def test_sampling_fails_clearly_when_every_possible_row_is_a_training_row(
    tmp_path, capsys
):
    df = pd.DataFrame({"smoker": np.repeat(["former", "no", "yes"], 70)})
    synth = fit(df, ["exact_match == 0"])
    with pytest.raises(RuntimeError, match="could not draw enough rows"):
        synth.sample(10, seed=0)

    model = synth.save(tmp_path / "model.psygentab")
    out = tmp_path / "out"
    out.mkdir()
    argv = ["sample", "--model", str(model), "-n", "10", "--out", str(out / "s.csv")]
    assert cli.main(argv) == cli.EXIT_FAILED
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "could not draw enough rows" in lines[0]
    assert lines[0].startswith("psygentab sample: error: ")
    assert sorted(out.iterdir()) == []
