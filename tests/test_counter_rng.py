"""The counter-hash generator of the sampling path: distributions and independence.

Every statistic is checked at about five standard errors, on fixed keys, so a
failure means a broken generator rather than bad luck.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from psygentab_jax._src import counter_rng

N = 1 << 18  # values per draw: standard error of a mean or correlation ~0.002
TOL = 5 / np.sqrt(N)
EDGES = jnp.asarray([0, 2**32 - 1], jnp.uint32)  # the smallest and largest words


def _draw(fn, key, shape=(N,)):
    return np.asarray(jax.jit(fn, static_argnums=1)(key, shape))


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_uniform_is_uniform_and_below_one():
    u = _draw(counter_rng.uniform, jax.random.key(0))
    assert u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(u.mean() - 0.5) < TOL * np.sqrt(1 / 12)

    # The extreme words map inside [0, 1).
    edges = np.asarray(jax.jit(counter_rng._unit)(EDGES))
    assert edges[0] == 0.0 and edges[1] == 1.0 - 2.0**-24


def test_normal_is_standard_normal_and_finite():
    z = _draw(counter_rng.normal, jax.random.key(1))
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < TOL
    assert abs(z.var() - 1.0) < TOL * np.sqrt(2)
    assert abs(stats.kurtosis(z)) < TOL * np.sqrt(24)

    # Tails: P(|z| > 3) = 0.0027, standard error ~1e-4 at N.
    tail = 2 * stats.norm.sf(3)
    assert abs(np.mean(np.abs(z) > 3) - tail) < 5 * np.sqrt(tail / N)
    # The two halves of a Box-Muller pair share a radius, yet are independent.
    half = N // 2
    assert abs(_corr(z[:half], z[half:])) < TOL
    assert abs(_corr(z[:half] ** 2, z[half:] ** 2)) < TOL

    # The extreme radius words: u1 = 2^-24 gives the largest radius, u1 = 1 zero.
    cos, sin = jax.jit(counter_rng._box_muller)(EDGES, jnp.zeros(2, jnp.uint32))
    radius = np.hypot(np.asarray(cos, np.float64), np.asarray(sin, np.float64))
    np.testing.assert_allclose(radius, [np.sqrt(48 * np.log(2)), 0.0], atol=1e-6)


def test_box_muller_angle_is_accurate_on_every_quarter_turn():
    # One angle word in 4096 (every cell of 2^12 across the whole turn), radius
    # words fixed; the polynomial sine and cosine against float64 numpy.
    words = np.arange(0, 2**32, 2**12, dtype=np.uint64).astype(np.uint32)
    radius = np.float64(np.float32(np.sqrt(48 * np.log(2))))
    cos, sin = jax.jit(counter_rng._box_muller)(
        jnp.zeros(words.shape, jnp.uint32), jnp.asarray(words)
    )
    theta = 2 * np.pi * (words >> 8).astype(np.float64) * 2.0**-24
    np.testing.assert_allclose(np.asarray(cos) / radius, np.cos(theta), atol=3e-7)
    np.testing.assert_allclose(np.asarray(sin) / radius, np.sin(theta), atol=3e-7)


def test_every_bit_is_balanced():
    words = _draw(counter_rng.bits, jax.random.key(2))
    assert words.dtype == np.uint32
    ones = [((words >> b) & 1).mean() for b in range(32)]
    assert np.abs(np.asarray(ones) - 0.5).max() < TOL * 0.5


def test_neighbouring_counters_are_uncorrelated():
    u = _draw(counter_rng.uniform, jax.random.key(3), (512, 512))
    flat = u.ravel()
    assert abs(_corr(flat[:-1], flat[1:])) < TOL  # along a row
    assert abs(_corr(u[:-1], u[1:])) < TOL  # down a column (stride 512)

    # Consecutive pairs fill the unit square evenly (16 x 16 cells).
    cells = (flat[0::2] * 16).astype(int) * 16 + (flat[1::2] * 16).astype(int)
    counts = np.bincount(cells, minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_keys_give_independent_streams():
    key = jax.random.key(4)
    draw = jax.jit(lambda k: counter_rng.normal(k, (N,)))
    # Sampling keys its blocks with fold_in(key, i): neighbouring blocks.
    a, b = (np.asarray(draw(jax.random.fold_in(key, i))) for i in (7, 8))
    c, d = (np.asarray(draw(k)) for k in jax.random.split(key))
    for x, y in [(a, b), (c, d), (a, c)]:
        assert abs(_corr(x, y)) < TOL
        assert stats.ks_2samp(x, y).pvalue > 1e-3
    # Legacy keys of neighbouring seeds.
    e, f = (np.asarray(draw(jax.random.PRNGKey(s))) for s in (0, 1))
    assert abs(_corr(e, f)) < TOL


def test_same_key_same_values_whatever_the_call():
    key = jax.random.key(5)
    once = _draw(counter_rng.bits, key, (64, 48))
    np.testing.assert_array_equal(_draw(counter_rng.bits, key, (64, 48)), once)
    # A legacy key of the same seed is the same key.
    np.testing.assert_array_equal(
        _draw(counter_rng.bits, jax.random.PRNGKey(5), (64, 48)), once
    )
    # A value depends only on its row-major position, not on the shape around it
    # (so any partitioning of the counter gives the same values).
    flat = _draw(counter_rng.bits, key, (64 * 48,))
    np.testing.assert_array_equal(flat.reshape(64, 48), once)
    split = _draw(counter_rng.bits, key, (8, 8, 1, 48))
    np.testing.assert_array_equal(split.reshape(64, 48), once)
    # vmapped over keys, each key gives its own draw.
    keys = jax.random.split(key, 3)
    batched = jax.jit(jax.vmap(lambda k: counter_rng.bits(k, (64, 48))))(keys)
    for k, row in zip(keys, np.asarray(batched), strict=True):
        np.testing.assert_array_equal(_draw(counter_rng.bits, k, (64, 48)), row)


def test_more_than_2_to_the_32_values_is_refused():
    key = jax.random.key(6)
    with pytest.raises(ValueError, match="2\\^32"):
        counter_rng.bits(key, (1 << 16, (1 << 16) + 1))

    def shape(fn, size):
        return jax.eval_shape(lambda k: fn(k, size), key).shape

    assert shape(counter_rng.bits, (1 << 16, 1 << 16)) == (1 << 16, 1 << 16)
    assert shape(counter_rng.normal, ()) == ()
    assert shape(counter_rng.uniform, 3) == (3,)
