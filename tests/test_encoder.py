"""Schema inference and the reversible encoding, on real and generated tables."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import psygentab_jax as pg
from psygentab_jax._src import mixture
from psygentab_jax._src.encoder import expand
from tests.conftest import TABLES, shared_table

KNOWN_IDS = {"covid_testing": "subject_id", "thyroid": "patient_id", "support2": "pid"}


def assert_round_trip(df: pd.DataFrame, schema: pg.Schema) -> None:
    encoder = pg.TableEncoder(schema).fit(df)
    encoded = encoder.encode(df)
    assert encoded.dtype == np.float32
    assert encoded.shape == (len(df), encoder.layout.width)
    back = encoder.decode(encoded)
    assert list(back.columns) == list(df.columns)
    for spec in schema.columns:
        name = spec.name
        original, decoded = df[name], back[name]
        assert decoded.dtype == original.dtype, name
        if spec.kind == "identifier":
            assert decoded.is_unique, name
            continue
        np.testing.assert_array_equal(
            decoded.isna().to_numpy(), original.isna().to_numpy(), err_msg=name
        )
        if spec.kind == "continuous":
            a = original.to_numpy(dtype=float)
            b = decoded.to_numpy(dtype=float)
            seen = ~np.isnan(a)
            # Relative to the value, or to the column's spread for values near 0.
            scale = np.maximum(np.abs(a[seen]), np.nanstd(a))
            assert np.all(np.abs(a[seen] - b[seen]) <= 1e-6 * scale), name
        else:
            pd.testing.assert_series_equal(decoded, original, check_names=False)


@pytest.mark.parametrize("name", TABLES)
def test_round_trip_shared_tables(name):
    df = shared_table(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = pg.infer_schema(df)
    assert_round_trip(df, schema)


@pytest.mark.parametrize("name", TABLES)
def test_identifiers_found_and_no_false_identifier(name):
    df = shared_table(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = pg.infer_schema(df)
    expected = [KNOWN_IDS[name]] if name in KNOWN_IDS else []
    assert schema.identifiers == expected
    if expected:
        assert any(expected[0] in str(w.message) for w in caught)


def test_kinds_of_messy_columns():
    df = shared_table("heart_disease_uci")
    schema = pg.infer_schema(df, target="disease")
    assert schema["ca"].kind == "categorical"  # integer codes stored as floats
    assert schema["fbs"].kind == "categorical"  # booleans with missing values
    assert schema["chol"].kind == "integer"
    assert schema["oldpeak"].kind == "continuous"
    assert schema["disease"].kind == "categorical"
    aids = pg.infer_schema(shared_table("aids_actg320"))
    assert aids["raceth"].kind == "categorical"  # coded categorical as integer


def test_schema_json_round_trip_and_override():
    df = shared_table("pima")
    schema = pg.infer_schema(df, target="type")
    again = pg.Schema.from_json(schema.to_json())
    assert again == schema
    edited = schema.with_kinds(npreg="categorical")
    assert edited["npreg"].kind == "categorical"
    assert schema["npreg"].kind == "integer"
    assert_round_trip(df, edited)
    with pytest.raises(pg.SchemaError, match="unknown columns"):
        schema.with_kinds(nope="integer")
    with pytest.raises(pg.SchemaError, match="unknown kind"):
        schema.with_kinds(npreg="text")


def test_point_mass_decodes_exactly():
    rng = np.random.default_rng(0)
    values = rng.lognormal(3.0, 0.5, size=2000)
    values[rng.random(2000) < 0.3] = 0.0  # "not measured"
    values[rng.random(2000) < 0.1] = np.nan
    df = pd.DataFrame({"lab": values, "sex": rng.choice(["F", "M"], 2000)})
    schema = pg.infer_schema(df)
    encoder = pg.TableEncoder(schema).fit(df)
    value_block, mode_block = encoder.layout.blocks_of("lab")
    encoded = encoder.encode(df)
    zero_rows = df["lab"].to_numpy() == 0.0
    modes = np.argmax(encoded[:, mode_block.slice], axis=1)
    assert len(np.unique(modes[zero_rows])) == 1  # one mode holds all the zeros
    assert np.all(encoded[zero_rows, value_block.start] == 0.0)
    # A sample from the zero mode decodes to exactly 0, whatever its scalar.
    fake = encoded[zero_rows][:50].copy()
    fake[:, value_block.start] = rng.uniform(-1, 1, size=50)
    assert np.all(encoder.decode(fake)["lab"].to_numpy() == 0.0)
    assert_round_trip(df, schema)


def test_unseen_category_is_a_clear_error():
    df = pd.DataFrame({"site": ["a", "b", "a", "c"] * 10, "x": np.arange(40.0) / 7})
    encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    other = df.copy()
    other.loc[3, "site"] = "zz"
    with pytest.raises(pg.SchemaError, match=r"'site'.*not seen at fit time.*zz"):
        encoder.encode(other)


def test_mixture_batched_equals_separate():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(-5, 1, 3000), rng.normal(5, 0.5, 1000)])
    b = rng.normal(100, 10, 2500)
    joint = mixture.fit_mixtures([a, b], max_modes=5)
    alone = mixture.fit_mixtures([a], max_modes=5)
    np.testing.assert_allclose(joint.means[0], alone.means[0], rtol=1e-9)
    # The two clusters are recovered (a cluster may be split into several modes).
    weights, means = joint.weights[0], joint.means[0]
    left = means < 0
    assert abs(weights[left].sum() - 0.75) < 0.02
    assert abs(np.sum(weights[left] * means[left]) / weights[left].sum() + 5) < 0.1
    assert abs(np.sum(weights[~left] * means[~left]) / weights[~left].sum() - 5) < 0.1


def test_metric_space_hard_and_soft():
    df = shared_table("heart_disease_uci")
    encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    space = encoder.metric_space
    metric = encoder.to_metric(df)
    assert metric.shape == (len(df), space.width)
    (chol,) = [c for c in space.columns if c.name == "chol" and c.kind == "numeric"]
    seen = df["chol"].notna().to_numpy()
    expected = (df["chol"] - df["chol"].median()) / df["chol"].std(ddof=0)
    np.testing.assert_allclose(
        metric[seen, chol.start], expected[seen].to_numpy(), atol=1e-4
    )
    assert np.all(metric[~seen, chol.start] == 0.0)
    (sex,) = [c for c in space.columns if c.name == "sex"]
    row_norms = np.linalg.norm(metric[:, sex.start : sex.start + sex.width], axis=1)
    np.testing.assert_allclose(row_norms, 1 / np.sqrt(2), rtol=1e-6)

    encoded = jnp.asarray(encoder.encode(df[:64]))
    loss = jax.jit(lambda x: jnp.sum(space.embed(jax.nn.softmax(x)) ** 2))
    grad = jax.grad(loss)(encoded)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_compact_form_expands_to_dense():
    df = shared_table("covid_testing").head(500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    values, codes = encoder.encode_compact(df)
    dense = jax.jit(lambda v, c: expand(encoder.layout, v, c))(values, codes)
    np.testing.assert_array_equal(np.asarray(dense), encoder.encode(df))
    pd.testing.assert_frame_equal(
        encoder.decode_compact(values, codes), encoder.decode(np.asarray(dense))
    )


def test_encoder_state_round_trip():
    df = shared_table("heart_disease_uci")
    encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    import json

    restored = pg.TableEncoder.from_state_dict(
        json.loads(json.dumps(encoder.state_dict()))
    )
    assert restored.layout == encoder.layout
    np.testing.assert_array_equal(restored.encode(df), encoder.encode(df))
    pd.testing.assert_frame_equal(
        restored.decode(encoder.encode(df)), encoder.decode(encoder.encode(df))
    )


# --------------------------------------------------------------- properties
@st.composite
def frames(draw):
    n = draw(st.integers(min_value=5, max_value=60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    columns = {}
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["float", "int", "str", "bool", "code"]))
        missing = rng.random(n) < draw(st.sampled_from([0.0, 0.2]))
        missing[0] = False  # never an entirely missing column
        if kind == "float":
            scale = 10 ** draw(st.integers(-3, 4))
            data = pd.Series(rng.normal(0, scale, n).round(draw(st.integers(0, 8))))
        elif kind == "int":
            data = pd.Series(rng.integers(-50, 500, n))
        elif kind == "code":
            data = pd.Series(rng.integers(0, 4, n))
        elif kind == "str":
            data = pd.Series(rng.choice(["a", "bé", "c c", "Ω"], n)).astype(str)
        else:
            data = pd.Series(rng.random(n) < 0.5)
        if missing.any():
            data = data.astype(object) if kind == "bool" else data
            data = data.where(~missing)
        columns[f"c{index}_{kind}"] = data
    return pd.DataFrame(columns)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(frames())
def test_round_trip_generated_frames(df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = pg.infer_schema(df)
    if all(c.kind in ("identifier", "constant") for c in schema.columns):
        with pytest.raises(pg.SchemaError, match="no column to learn"):
            pg.TableEncoder(schema).fit(df)
        return
    assert_round_trip(df, schema)
