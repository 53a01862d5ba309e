"""The differentiable surrogates: finite gradients on duplicates, the scale of the
exact metric, and the same ranking of generators as the exact audit."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from psygentab_jax import audit, surrogates
from tests.test_audit import metric_split, mixed_rows

SURROGATES = {
    "dcr": lambda s, t, h: jnp.median(surrogates.soft_dcr(s, t)),
    "share": surrogates.soft_dcr_share,
    "near": lambda s, t, h: surrogates.soft_near_duplicate_rate(s, t),
    "nndr": lambda s, t, h: jnp.median(surrogates.soft_nndr(s, t)),
    "membership": surrogates.soft_membership_auc,
}


def exact_metrics(synthetic, train, holdout) -> dict[str, float]:
    """The audit's figure that each surrogate stands for."""
    distance = audit.dcr(synthetic, train)
    return {
        "dcr": float(np.median(distance)),
        "share": audit.dcr_share(synthetic, train, holdout),
        "near": float(np.mean(distance <= audit.NEAR_DELTA)),
        "nndr": float(np.median(audit.nndr(synthetic, train))),
        "membership": audit.distance_attack(synthetic, train, holdout).auc,
    }


def ladder(train, holdout, fresh, seed=0):
    """Generators from copying to fresh: copies of the training rows moved by a
    random radius (log-normal across rows, its median a multiple ``level`` of the
    typical holdout-to-train distance), then a fresh sample."""
    rng = np.random.default_rng(seed)
    scale = float(np.median(audit.dcr(holdout, train)))
    for level in (0.0, 0.03, 0.1, 0.3, 1.0, 3.0):
        radius = level * scale * np.exp(rng.normal(size=(len(train), 1)))
        direction = rng.normal(size=train.shape)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        yield f"noise {level}", (train + radius * direction).astype(np.float32)
    yield "fresh", fresh


@pytest.mark.parametrize("table", ["heart_disease_uci", "support2"])
def test_surrogates_rank_generators_like_the_audit(table):
    train, holdout, fresh, _ = metric_split(table)
    soft = {name: jax.jit(fn) for name, fn in SURROGATES.items()}

    exact, approx = [], []
    for _, synthetic in ladder(train, holdout, fresh):
        exact.append(exact_metrics(synthetic, train, holdout))
        approx.append(
            {n: float(fn(synthetic, train, holdout)) for n, fn in soft.items()}
        )

    for name in SURROGATES:
        x = np.array([row[name] for row in exact])
        y = np.array([row[name] for row in approx])
        rho = spearmanr(x, y)[0]
        assert rho >= 0.9, (name, rho, x, y)
        # Same scale: one threshold serves trainer and audit.
        if name == "dcr":
            np.testing.assert_allclose(y, x, rtol=0.02, atol=0.01, err_msg=name)
        else:
            np.testing.assert_allclose(y, x, atol=0.05, err_msg=name)


def batch_with_duplicates(seed=0):
    rng = np.random.default_rng(seed)
    train, holdout = mixed_rows(rng, 32), mixed_rows(rng, 32)
    holdout[:4] = train[:4]  # a patient in both sets
    synthetic = np.concatenate(
        [train[:8], train[:8], holdout[:4], mixed_rows(rng, 12)]
    )  # copies, copies of copies, and fresh rows: 32 rows, many distances 0
    return jnp.asarray(synthetic), jnp.asarray(train), jnp.asarray(holdout)


def test_gradients_are_finite_on_exact_duplicates():
    synthetic, train, holdout = batch_with_duplicates()

    @jax.jit
    def values_and_grads(synthetic, train, holdout):
        out = {}
        for name, fn in SURROGATES.items():
            grad = jax.value_and_grad(fn, argnums=(0, 1, 2))
            out[name] = grad(synthetic, train, holdout)
            # A batch of nothing but copies of one set.
            out[name + " (copies)"] = grad(train, train, train)
        return out

    for name, (value, grads) in values_and_grads(synthetic, train, holdout).items():
        assert np.isfinite(float(value)), name
        for grad in grads:
            assert np.all(np.isfinite(np.asarray(grad))), name


def test_pairwise_distance_is_safe_at_zero():
    x = jnp.asarray(mixed_rows(np.random.default_rng(0), 6))
    eps = 1e-8

    distance = jax.jit(functools.partial(surrogates.pairwise_distance, eps=eps))(x, x)
    grad = jax.jit(jax.grad(lambda a: surrogates.pairwise_distance(a, x).sum()))(x)

    np.testing.assert_allclose(np.diag(distance), np.sqrt(eps), rtol=1e-3)
    off = ~np.eye(6, dtype=bool)
    exact = np.linalg.norm(np.asarray(x)[:, None] - np.asarray(x)[None], axis=-1)
    np.testing.assert_allclose(np.asarray(distance)[off], exact[off], rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_surrogates_at_their_limits():
    rng = np.random.default_rng(1)
    train, holdout = jnp.asarray(mixed_rows(rng, 40)), jnp.asarray(mixed_rows(rng, 40))
    share = jax.jit(surrogates.soft_dcr_share)
    membership = jax.jit(surrogates.soft_membership_auc)
    near = jax.jit(surrogates.soft_near_duplicate_rate)
    dcr = jax.jit(surrogates.soft_dcr)
    nndr = jax.jit(surrogates.soft_nndr)

    # Train and holdout indistinguishable: exactly 0.5.
    assert float(share(holdout, train, train)) == pytest.approx(0.5)
    assert float(membership(holdout, train, train)) == pytest.approx(0.5)
    # Copies of the training rows: share, near-duplicates and AUC at 1, DCR 0.
    assert float(share(train, train, holdout)) > 0.99
    assert float(membership(train, train, holdout)) > 0.99
    assert float(near(train, train)) > 0.99
    # float32 rounding of the matmul expansion leaves copies a few 1e-3 from 0.
    assert float(jnp.max(dcr(train, train))) < 5e-3
    assert float(jnp.max(nndr(train, train))) < 5e-3
    # The soft DCR is above the exact one by at most about the temperature, and
    # tends to it as the temperature shrinks.
    exact = audit.dcr(holdout, train)
    soft = np.asarray(dcr(holdout, train))
    assert np.all(soft >= exact - 1e-3) and np.all(soft <= exact + 0.02)
    sharp = jax.jit(functools.partial(surrogates.soft_dcr, temperature=1e-3))
    np.testing.assert_allclose(sharp(holdout, train), exact, rtol=1e-3, atol=1e-3)
