"""Tests of the generator backbones, their heads and the training driver."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import psygentab_jax as pg
from psygentab_jax import models
from psygentab_jax._src.layout import Block, Layout
from psygentab_jax._src.models import heads

KS_BOUND = 0.15
TV_BOUND = 0.10
RHO = 0.7

# Small networks and batches so that a fit takes seconds on two CPU cores.
GAN_TEST = models.GANConfig(
    embedding_dim=32,
    generator_dim=(128, 128),
    discriminator_dim=(128, 128),
    batch_size=100,
    generator_lr=5e-4,
    discriminator_lr=5e-4,
    discriminator_steps=3,
    dropout=0.0,
)
VAE_TEST = models.VAEConfig(batch_size=100, penalty_batch=100)
EPOCHS = {"gan": 200, "vae": 150}
TINY = {
    "gan": models.GANConfig(
        embedding_dim=8, generator_dim=(16,), discriminator_dim=(16,), batch_size=50
    ),
    "vae": models.VAEConfig(
        embedding_dim=8, compress_dims=(16,), decompress_dims=(16,), batch_size=50
    ),
}


def mixed_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Two Gaussians with rho = 0.7, a 3-class column driven by ``a`` whose class
    "rare" has probability 0.05, and a binary column driven by ``b``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = RHO * a + np.sqrt(1 - RHO**2) * rng.normal(size=n)
    u = rng.uniform(size=n)
    high = 0.95 / (1 + np.exp(-2 * a))
    c = np.where(u < 0.05, "rare", np.where(u < 0.05 + high, "hi", "lo"))
    g = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-1.5 * b)), "yes", "no")
    return pd.DataFrame({"a": 3.0 + 2.0 * a, "b": b, "c": c, "g": g})


def fidelity(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """KS of the numeric columns, TV of the categorical ones, the correlation."""
    result = {}
    for column in ("a", "b"):
        result[f"ks_{column}"] = stats.ks_2samp(
            real[column], synthetic[column]
        ).statistic
    for column in ("c", "g"):
        p = real[column].value_counts(normalize=True)
        q = synthetic[column].value_counts(normalize=True)
        p, q = p.align(q, fill_value=0.0)
        result[f"tv_{column}"] = 0.5 * float(np.abs(p - q).sum())
    result["rho"] = float(np.corrcoef(synthetic["a"], synthetic["b"])[0, 1])
    result["rare"] = float((synthetic["c"] == "rare").mean())
    return result


def passes(q: dict) -> bool:
    return (
        max(q["ks_a"], q["ks_b"]) < KS_BOUND
        and max(q["tv_c"], q["tv_g"]) < TV_BOUND
        and abs(q["rho"] - RHO) < 0.15
    )


@pytest.fixture(scope="module")
def mixed():
    df = mixed_table()
    encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    x = encoder.encode(df)
    return df, encoder, x, models.DataStats.from_encoded(encoder.layout, x)


def make(kind, layout, data_stats, config=None, **kwargs):
    factory = models.make_gan if kind == "gan" else models.make_vae
    default = GAN_TEST if kind == "gan" else VAE_TEST
    return factory(layout, data_stats, config or default, **kwargs)


@pytest.fixture(scope="module", params=["gan", "vae"])
def trained(request, mixed):
    df, encoder, x, data_stats = mixed
    backbone = make(request.param, encoder.layout, data_stats)
    untrained = backbone.init(jax.random.key(0))
    state, history = models.fit(backbone, x, jax.random.key(0), EPOCHS[request.param])
    return request.param, backbone, untrained, state, history


def test_backbone_recovers_marginals_and_correlation(mixed, trained):
    df, encoder, _, _ = mixed
    kind, backbone, untrained, state, history = trained
    assert len(history) == EPOCHS[kind]
    assert all(np.isfinite(v) for v in history[-1].values() if np.isscalar(v))

    key = jax.random.key(1)
    before = fidelity(
        df, encoder.decode(models.generate(backbone, untrained.params, key, 4000))
    )
    after = fidelity(
        df, encoder.decode(models.generate(backbone, state.params, key, 4000))
    )
    assert not passes(before), before
    assert passes(after), (kind, after)
    assert 0.025 < after["rare"] < 0.075, after


def test_conditional_sampling_returns_requested_class(mixed, trained):
    df, encoder, x, _ = mixed
    _, backbone, _, state, _ = trained
    block = encoder.layout.blocks_of("c")[0]
    rare = int(np.argmax(x[np.flatnonzero(df["c"] == "rare")[0], block.slice]))
    cond = models.condition_vector(encoder.layout, "c", rare)

    rows = models.generate(backbone, state.params, jax.random.key(2), 500, cond=cond)
    synthetic = encoder.decode(rows)
    assert (synthetic["c"] == "rare").all()
    # The condition steers the other columns too: "rare" rows are not "hi" rows.
    assert (
        stats.ks_2samp(synthetic["a"], df.loc[df["c"] == "rare", "a"]).statistic < 0.3
    )


def test_unconditional_target_share_matches_training(mixed, trained):
    df, encoder, x, data_stats = mixed
    kind, _, _, state, _ = trained
    backbone = make(kind, encoder.layout, data_stats, target="c")
    rows = models.generate(backbone, state.params, jax.random.key(3), 20_000)
    shares = encoder.decode(rows)["c"].value_counts(normalize=True)
    expected = df["c"].value_counts(normalize=True)
    gap = (shares.reindex(expected.index, fill_value=0.0) - expected).abs()
    assert gap.max() < 0.02, gap


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_from_checkpoint_equals_uninterrupted_run(kind, mixed, tmp_path):
    _, encoder, x, data_stats = mixed
    backbone = make(kind, encoder.layout, data_stats, TINY[kind])
    key = jax.random.key(7)
    straight, _ = models.fit(backbone, x, key, 4)

    first, _ = models.fit(backbone, x, key, 2, checkpoint_dir=tmp_path, every=1)
    assert len(models.list_checkpoints(tmp_path)) == 2
    resumed, history = models.fit(backbone, x, key, 4, checkpoint_dir=tmp_path, every=1)
    assert len(history) == 2 and int(resumed.epoch) == 4
    chex.assert_trees_all_equal(resumed, straight)
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


@pytest.fixture(scope="module", params=["gan", "vae"])
def penalized(request, mixed):
    """Two short runs from the same start through one jitted epoch: penalty weight
    0 and 20 on the mean of column ``b``'s value entry."""
    kind = request.param
    _, encoder, x, data_stats = mixed
    value = encoder.layout.blocks_of("b")[0].start

    def penalty(rows, weight):
        mean = jnp.mean(rows[:, value])
        return weight * mean, {"value_mean": mean}

    traces = []

    def counted_epoch(*args):
        traces.append(None)
        return backbone.epoch(*args)

    backbone = make(kind, encoder.layout, data_stats, TINY[kind], penalty_fn=penalty)
    epoch = jax.jit(counted_epoch)
    start = backbone.init(jax.random.key(0))
    data = jnp.asarray(x)
    runs = {}
    for weight in (0.0, 20.0):
        state, history = start, []
        for i in range(8):
            state, metrics = epoch(state, data, jax.random.key(i), jnp.float32(weight))
            history.append(metrics)
        runs[weight] = (state, history)
    return kind, backbone, value, penalty, start, runs, len(traces)


def test_epoch_does_not_retrace_across_epochs(penalized):
    _, _, _, _, _, runs, n_traces = penalized
    assert n_traces == 1
    state, history = runs[20.0]
    assert int(state.epoch) == 8
    metrics = history[-1]
    assert set(metrics["penalty_aux"]) == {"value_mean"}
    np.testing.assert_allclose(
        metrics["penalty"], 20.0 * metrics["penalty_aux"]["value_mean"], rtol=1e-5
    )


def test_penalty_hook_moves_the_penalized_column(penalized):
    kind, backbone, value, penalty, start, runs, _ = penalized

    def loss(params, weight):
        rows = backbone.sample(params, jax.random.key(3), 256, hard=True)
        return penalty(rows, weight)[0]

    grad = jax.jit(jax.grad(loss))(start.params, jnp.float32(1.0))
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grad)) > 0

    means = {}
    for weight, (state, _) in runs.items():
        rows = models.generate(backbone, state.params, jax.random.key(5), 2000)
        means[weight] = float(rows[:, value].mean())
    assert means[20.0] < means[0.0] - 0.1, means


def test_training_by_sampling_draws_log_frequency_and_matching_rows():
    layout = Layout(
        (
            Block("v", "scalar", "value", 0, 1),
            Block("k", "softmax", "category", 1, 3),
            Block("h", "softmax", "category", 4, 2),
        )
    )
    rng = np.random.default_rng(0)
    n = 2000
    k = rng.choice(3, n, p=[0.9, 0.08, 0.02])
    h = rng.choice(2, n, p=[0.5, 0.5])
    x = np.zeros((n, layout.width), np.float32)
    x[np.arange(n), 1 + k] = 1
    x[np.arange(n), 4 + h] = 1
    spec = heads.CondSpec.from_layout(layout)

    @jax.jit
    def draw(key, data):
        return heads.sample_training_conditions(
            key, heads.index_rows(data, spec), spec, 50_000
        )

    cond, rows = draw(jax.random.key(0), jnp.asarray(x))
    cond, rows = np.asarray(cond), np.asarray(rows)
    assert np.all(cond.sum(axis=1) == 1)
    # Every picked row carries its condition's category.
    picked = x[rows][:, 1:]
    assert np.all(picked[cond > 0] == 1)
    # Column uniform, then category proportional to log(1 + count).
    counts = np.bincount(k, minlength=3)
    expected = 0.5 * np.log1p(counts) / np.log1p(counts).sum()
    np.testing.assert_allclose(cond[:, :3].mean(axis=0), expected, atol=0.01)


def test_hard_samples_are_exact_one_hot_and_differentiable():
    layout = Layout(
        (Block("v", "scalar", "value", 0, 1), Block("k", "softmax", "category", 1, 4))
    )
    logits = jax.random.normal(jax.random.key(0), (64, 5))

    def total(logits):
        rows = heads.activate(logits, layout, jax.random.key(1), hard=True)
        return jnp.sum(rows * jnp.arange(5.0)), rows

    grad, rows = jax.jit(jax.grad(total, has_aux=True))(logits)
    np.testing.assert_array_equal(np.asarray(rows[:, 1:]).sum(axis=1), 1.0)
    assert set(np.unique(np.asarray(rows[:, 1:]))) <= {0.0, 1.0}
    assert np.all(np.abs(np.asarray(rows[:, 0])) <= 1.0)
    assert float(jnp.abs(grad[:, 1:]).sum()) > 0
