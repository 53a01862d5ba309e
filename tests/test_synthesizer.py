"""The end-to-end synthesizer: constrained fit, audit, frontier, files, CLI."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from psygentab_jax import cli, datasets
from psygentab_jax._src import constraints as cons
from psygentab_jax._src.synthesizer import Synthesizer, _row_hashes

EPOCHS = 4


@pytest.fixture(scope="module")
def heart():
    return datasets.load("heart_disease_uci")


@pytest.fixture(scope="module")
def fitted(heart):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth = Synthesizer(backbone="vae", epochs=EPOCHS, seed=0)
        return synth.fit(heart, target="disease")


def test_parse_constraints():
    c = cons.parse("dcr_share <= 0.55")
    assert (c.metric, c.op, c.threshold) == ("dcr_share", "<=", 0.55)
    assert cons.parse("nndr>0.8").op == ">="
    assert c.met(0.5) and not c.met(0.56)
    with pytest.raises(ValueError, match="does not parse"):
        cons.parse("dcr_share is small")
    with pytest.raises(ValueError, match="unknown metric 'dcr'"):
        cons.parse("dcr <= 1")


@pytest.mark.parametrize("soft", [False, True])
def test_repeated_metrics_are_computed_once_with_the_same_values(soft):
    """Constraints on one metric at several thresholds share one value and one
    gradient: ``evaluate`` equals each metric computed on its own."""
    rng = np.random.default_rng(0)
    train, reference, synthetic = (
        jnp.asarray(rng.normal(size=(n, 4)), jnp.float32) for n in (60, 40, 50)
    )
    context = cons.Context(numeric=(0, 1, 2, 3), target=None)
    refs = cons.make_references(train, reference, context)
    texts = ["dcr_share <= 0.5", "mia_auc <= 0.6", "dcr_share <= 0.7", "nndr >= 0.1"]
    texts += ["mia_auc <= 0.55"]
    constraint_list = tuple(cons.parse(t) for t in texts)

    def values(x):
        return cons.evaluate(constraint_list, x, refs, context, soft=soft)

    found = jax.jit(values)(synthetic)
    for i, c in enumerate(constraint_list):
        alone = cons.metric_value(c.metric, synthetic, refs, context, soft=soft)
        np.testing.assert_allclose(found[i], alone, rtol=1e-6)
    assert found[0] == found[2] and found[1] == found[4] and found[0] != found[1]
    if soft:  # the shared value's gradient reaches the rows once per constraint
        weights = jnp.arange(1.0, 6.0)
        grad = jax.grad(lambda x: jnp.dot(weights, values(x)))(synthetic)
        expected = sum(
            w
            * jax.grad(
                lambda x, c=c: cons.metric_value(c.metric, x, refs, context, soft=True)
            )(synthetic)
            for w, c in zip(weights, constraint_list, strict=True)
        )
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_holdout_never_trained_on_and_splits_disjoint(fitted, heart):
    split = fitted.data_info["split"]
    parts = [set(split[p]) for p in ("train", "reference", "holdout")]
    assert not parts[0] & parts[1] and not parts[0] & parts[2]
    assert not parts[1] & parts[2]
    assert sum(len(p) for p in parts) == len(heart)
    shares = [heart["disease"].iloc[sorted(p)].mean() for p in parts]
    assert max(shares) - min(shares) < 0.05  # stratified on the target


def test_audit_reports_each_constraint_with_baselines(fitted):
    audit = fitted.audit()
    names = [s["name"] for s in audit["constraints"]]
    assert names == [str(c) for c in fitted.constraints]
    for status in audit["constraints"]:
        assert np.isfinite(status["value"])
        assert status["met"] == cons.parse(status["name"]).met(status["value"])
    assert audit["all_met"] == all(s["met"] for s in audit["constraints"])
    for entry in audit["privacy"].values():
        assert set(entry) == {"value", "baseline"}


def test_no_emitted_row_equals_a_training_row():
    rng = np.random.default_rng(0)
    # Few distinct rows: a generator emits training rows often by chance.
    df = pd.DataFrame(
        {
            "site": rng.choice(["a", "b", "c"], 400),
            "grade": rng.integers(0, 12, 400),
            "outcome": rng.choice([0, 1], 400, p=[0.7, 0.3]),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth = Synthesizer(backbone="vae", epochs=2, seed=0)
        synth.fit(df, target="outcome", constraints=["exact_match == 0"])
    rows = synth.sample(300)
    assert len(rows) == 300
    columns = ["site", "grade", "outcome"]
    train = synth._frames["train"]
    assert not np.isin(_row_hashes(rows, columns), _row_hashes(train, columns)).any()
    # Without the constraint the same generator does emit training rows.
    free = Synthesizer.__new__(Synthesizer)
    free.__dict__.update(synth.__dict__)
    free.constraints = ()
    assert np.isin(
        _row_hashes(free.sample(300), columns), _row_hashes(train, columns)
    ).any()


def test_impossible_constraint_ends_not_met_with_capped_penalty(heart):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth = Synthesizer(backbone="vae", epochs=EPOCHS, seed=1)
        synth.fit(heart, target="disease", constraints=["dcr_share <= 0.1"])
    audit = synth.audit()
    (status,) = audit["constraints"]
    assert status["met"] is False and audit["all_met"] is False
    history = synth.result.history
    penalties = np.asarray(history["penalty"]["dcr_share <= 0.1"])
    multipliers = np.asarray(history["multiplier"]["dcr_share <= 0.1"])
    assert np.all(np.isfinite(multipliers)) and np.all(multipliers >= 0)
    assert penalties.max() <= synth.dual_config.penalty_max
    assert not synth.result.feasible_during_training


def test_conditional_sampling_returns_only_the_requested_class(fitted):
    rows = fitted.sample(200, condition={"disease": 0})
    assert set(rows["disease"].unique()) == {0}
    with pytest.raises(ValueError, match="not a category"):
        fitted.sample(5, condition={"disease": 7})


def test_same_seed_same_rows_and_save_load(fitted, tmp_path):
    first = fitted.sample(64, seed=3)
    pd.testing.assert_frame_equal(first, fitted.sample(64, seed=3))
    assert not first.equals(fitted.sample(64, seed=4))
    path = fitted.save(tmp_path / "model.psygentab")
    loaded = Synthesizer.load(path)
    pd.testing.assert_frame_equal(loaded.sample(64, seed=3), first)
    truncated = tmp_path / "truncated.psygentab"
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="not a psygentab model file"):
        Synthesizer.load(truncated)


def test_frontier_equals_separate_runs(heart):
    thresholds = [0.5, 0.7]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = Synthesizer(backbone="vae", epochs=2, seed=2).fit_frontier(
            heart, "disease", "dcr_share", thresholds
        )
        for model, threshold in zip(models, thresholds, strict=True):
            alone = Synthesizer(backbone="vae", epochs=2, seed=2).fit(
                heart, target="disease", constraints=[f"dcr_share <= {threshold}"]
            )
            chex_close = jax.tree.map(
                lambda a, b: np.allclose(a, b, rtol=1e-4, atol=1e-5),
                model.params,
                alone.params,
            )
            assert all(jax.tree.leaves(chex_close))
            np.testing.assert_allclose(
                model.result.history["exact"][f"dcr_share <= {threshold}"],
                alone.result.history["exact"][f"dcr_share <= {threshold}"],
                atol=1e-5,
            )


def test_cli_demo_end_to_end(tmp_path, capsys):
    code = cli.main(["demo", "--epochs", "3", "--out", str(tmp_path), "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    met = all(c["met"] for c in summary["constraints"])
    assert code == (0 if met else cli.EXIT_NOT_MET)
    for name in ("synthetic.csv", "model.psygentab", "report.html", "report.json"):
        assert (tmp_path / name).is_file(), name
    synthetic = pd.read_csv(tmp_path / "synthetic.csv")
    assert list(synthetic.columns) == list(datasets.load().columns)


def test_unconstrained_fit_has_no_constraint_status():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=200), "label": rng.choice(["a", "b"], 200)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth = Synthesizer(backbone="vae", epochs=1, seed=0)
        synth.fit(df, target="label", constraints=[])
    assert synth.result.history["exact"] == {}
    audit = synth.audit()
    assert audit["constraints"] == [] and audit["all_met"] is True
    assert len(synth.sample(10)) == 10
