"""Tests of the augmented Lagrangian solver (psygentab_jax.alm)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize

from psygentab_jax import alm


@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def jitted_update(is_equality, *, vmap=False, name="step", **hyperparameters):
    """A jitted dual update that fails if it is traced more than once.

    chex counts traces per call stack and function name, so two guarded updates
    made in one test need distinct names.
    """

    def update(state, values):
        return alm.update(state, values, is_equality, **hyperparameters)

    def step(state, values):
        return jax.vmap(update)(state, values) if vmap else update(state, values)

    step.__name__ = name
    return jax.jit(chex.assert_max_traces(step, n=1))


# Nocedal & Wright, Numerical Optimization (2006), problem 17.3:
# minimize x1 + x2 subject to x1² + x2² = 2; x* = (-1, -1). With L = f + λ h,
# ∇f + λ ∇h = (1, 1) + 2λ x* = 0 gives λ* = 1/2.


def circle_objective(x):
    return x[0] + x[1]


def test_nocedal_wright_17_3_equality(x64):
    is_eq = jnp.array([True])

    def constraints(x):
        return jnp.array([x[0] ** 2 + x[1] ** 2 - 2.0])

    solve = jax.jit(
        lambda x0: alm.solve(
            circle_objective, constraints, x0, is_eq, tol=1e-10, outer_steps=30
        )
    )
    result = solve(jnp.array([0.5, -0.3]))

    assert result.code == alm.CONVERGED
    assert result.feasible
    np.testing.assert_allclose(result.x, [-1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(result.multiplier, [0.5], atol=1e-6)
    np.testing.assert_allclose(result.objective, -2.0, atol=1e-6)


def test_nocedal_wright_17_3_inequality_inactive_multiplier_is_zero(x64):
    # x1² + x2² <= 2 is active at the solution, x1 <= 5 is not.
    is_eq = jnp.array([False, False])

    def constraints(x):
        return jnp.array([x[0] ** 2 + x[1] ** 2 - 2.0, x[0] - 5.0])

    solve = jax.jit(
        lambda x0: alm.solve(
            circle_objective, constraints, x0, is_eq, tol=1e-10, outer_steps=30
        )
    )
    result = solve(jnp.array([0.5, -0.3]))

    assert result.code == alm.CONVERGED
    np.testing.assert_allclose(result.x, [-1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(result.multiplier[0], 0.5, atol=1e-6)
    assert result.multiplier[1] == 0.0


# Random convex QPs: minimize ½ xᵀQx + cᵀx s.t. A_in x <= b_in, A_eq x = b_eq,
# feasible by construction (b is built around a random point x_f).

NUM_QPS = 50
DIM, NUM_INEQ, NUM_EQ = 6, 4, 2


def random_qps(seed, count, dim=DIM, num_ineq=NUM_INEQ, num_eq=NUM_EQ):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(count, dim, dim))
    hessian = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(dim)
    linear = 3.0 * rng.normal(size=(count, dim))
    point = rng.normal(size=(count, dim))
    matrix = rng.normal(size=(count, num_ineq + num_eq, dim))
    slack = np.concatenate(
        [rng.uniform(0.0, 1.0, (count, num_ineq)), np.zeros((count, num_eq))], axis=1
    )
    offset = np.einsum("kmn,kn->km", matrix, point) + slack
    return hessian, linear, matrix, offset


def qp_solve(hessian, linear, matrix, offset, *, tol=1e-9):
    is_eq = jnp.arange(NUM_INEQ + NUM_EQ) >= NUM_INEQ

    def objective(x):
        return 0.5 * x @ hessian @ x + linear @ x

    def constraints(x):
        return matrix @ x - offset

    x0 = jnp.zeros(linear.shape[-1], linear.dtype)
    return alm.solve(
        objective, constraints, x0, is_eq, tol=tol, inner_steps=40, outer_steps=40
    )


def slsqp(hessian, linear, matrix, offset):
    inequality, equality = slice(0, NUM_INEQ), slice(NUM_INEQ, None)
    constraints = [
        {
            "type": "ineq",
            "fun": lambda x: offset[inequality] - matrix[inequality] @ x,
            "jac": lambda x: -matrix[inequality],
        },
        {
            "type": "eq",
            "fun": lambda x: matrix[equality] @ x - offset[equality],
            "jac": lambda x: matrix[equality],
        },
    ]
    return minimize(
        lambda x: 0.5 * x @ hessian @ x + linear @ x,
        np.zeros(linear.shape[-1]),
        jac=lambda x: hessian @ x + linear,
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 1000},
    )


def kkt_residual(hessian, linear, matrix, offset, x, multiplier):
    """Max of stationarity, primal, dual feasibility and complementarity errors."""
    values = matrix @ x - offset
    inequality = values[:NUM_INEQ]
    return max(
        np.abs(hessian @ x + linear + matrix.T @ multiplier).max(),
        np.maximum(inequality, 0.0).max(),
        np.abs(values[NUM_INEQ:]).max(),
        np.maximum(-multiplier[:NUM_INEQ], 0.0).max(),
        np.abs(multiplier[:NUM_INEQ] * inequality).max(),
    )


@pytest.fixture(scope="module")
def solved_qps():
    """The random QPs and their batched (vmapped) ALM solution, in float64."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    data = random_qps(0, NUM_QPS)
    result = jax.jit(jax.vmap(qp_solve))(*(jnp.asarray(d) for d in data))
    result = jax.tree.map(np.asarray, result)
    jax.config.update("jax_enable_x64", previous)
    return data, result


def test_random_qps_match_slsqp(solved_qps):
    data, result = solved_qps

    assert np.all(result.code == alm.CONVERGED)
    assert np.all(result.feasible)
    num_active = 0
    for k in range(NUM_QPS):
        problem = [d[k] for d in data]
        reference = slsqp(*problem)
        assert reference.success, reference.message

        assert abs(result.objective[k] - reference.fun) <= 1e-6 * max(
            1.0, abs(reference.fun)
        )
        assert kkt_residual(*problem, result.x[k], result.multiplier[k]) < 1e-5
        num_active += int(np.sum(result.multiplier[k, :NUM_INEQ] > 0))
    # The set must exercise active inequalities, not only equalities.
    assert num_active >= NUM_QPS // 2


def test_vmap_solve_matches_one_by_one(solved_qps, x64):
    data, batched = solved_qps
    single = jax.jit(qp_solve)

    for k in range(0, NUM_QPS, 10):
        one = single(*(jnp.asarray(d[k]) for d in data))
        chex.assert_trees_all_close(
            (one.x, one.multiplier, one.objective),
            (batched.x[k], batched.multiplier[k], batched.objective[k]),
            atol=1e-8,
        )
        assert one.code == batched.code[k]
        assert one.num_steps == batched.num_steps[k]


def test_batched_update_matches_one_by_one():
    key_values, key_multiplier = jax.random.split(jax.random.key(0))
    values = jax.random.normal(key_values, (5, 7))
    is_eq = jnp.arange(7) % 3 == 0
    multiplier = jnp.abs(jax.random.normal(key_multiplier, (5, 7)))
    state = alm.init(values, penalty=2.0, multiplier=multiplier)
    state = state._replace(step=jnp.arange(5))
    hyperparameters = {"smoothing": 0.5, "kp": 0.3}

    batched = jitted_update(is_eq, name="batched", **hyperparameters)(state, values)
    mapped = jitted_update(is_eq, vmap=True, name="mapped", **hyperparameters)(
        state, values
    )
    chex.assert_trees_all_close(batched, mapped)
    single = jitted_update(is_eq, name="single", **hyperparameters)
    for k in range(5):
        one = single(jax.tree.map(lambda a, k=k: a[k], state), values[k])
        chex.assert_trees_all_close(one, jax.tree.map(lambda a, k=k: a[k], batched))


def test_ten_thousand_constraints_inactive_multipliers_stay_zero():
    m = 10_000
    key = jax.random.key(3)
    is_eq = jnp.arange(m) % 4 == 0
    inactive = ~is_eq & (jnp.arange(m) % 4 == 1)
    base = jax.random.normal(key, (m,))
    # Inactive inequalities keep strictly negative values; the others drift.
    values = jnp.where(inactive, -jnp.abs(base) - 0.1, base)
    step = jitted_update(is_eq, penalty_growth=2.0, penalty_max=100.0)

    state = alm.init(values)
    for k in range(5):
        state, status = step(state, values * 0.5**k)
        assert state.multiplier.shape == (m,)
        assert jnp.all(state.multiplier[inactive] == 0.0)
        assert jnp.all(state.multiplier[~is_eq] >= 0.0)
        assert not bool(status.feasible[~inactive & (values != 0)].all())
    assert bool(status.feasible[inactive].all())
    assert jnp.all(jnp.isfinite(state.penalty))


def test_noisy_constraint_multipliers_settle():
    # minimize (x - 3)² s.t. x - 1 <= 0: x* = 1, λ* = 2 (3 - 1) = 4. The dual update
    # sees x - 1 plus Gaussian noise; the primal step sees the exact proxy x - 1.
    is_eq = jnp.array([False])
    noise, cap, num_steps = 0.1, 10.0, 3000
    optimizer = optax.sgd(0.05)
    step = jitted_update(
        is_eq, smoothing=0.9, kp=1.0, dual_rate=0.01, penalty_max=cap, tol=1e-3
    )

    def objective(x):
        return (x[0] - 3.0) ** 2

    def constraint(x):
        return jnp.array([x[0] - 1.0])

    def body(carry, key):
        x, opt_state, state = carry
        grads = jax.grad(
            lambda x: objective(x) + alm.lagrangian_term(constraint(x), state, is_eq)
        )(x)
        updates, opt_state = optimizer.update(grads, opt_state, x)
        x = optax.apply_updates(x, updates)
        estimate = constraint(x) + noise * jax.random.normal(key, (1,))
        state, _ = step(state, estimate)
        return (x, opt_state, state), state

    x0 = jnp.zeros(1)
    carry = (x0, optimizer.init(x0), alm.init(constraint(x0)))
    keys = jax.random.split(jax.random.key(0), num_steps)
    (x, _, state), trajectory = jax.jit(lambda carry: jax.lax.scan(body, carry, keys))(
        carry
    )

    tail = trajectory.multiplier[int(0.8 * num_steps) :, 0]
    assert constraint(x)[0] <= 0.1 * noise
    assert float(tail.max() - tail.min()) < 0.1 * 4.0
    assert abs(float(tail.mean()) - 4.0) < 0.05 * 4.0
    assert float(trajectory.penalty.max()) <= cap
    assert bool(jnp.all(jnp.isfinite(trajectory.multiplier)))


def test_step_function_constraint_with_smooth_proxy():
    # At most 10 % of the shifted points may lie above 1; the true constraint is a
    # step function of the shift, its proxy a sigmoid relaxation.
    points = jax.random.normal(jax.random.key(1), (400,))
    is_eq = jnp.array([False])

    def objective(theta):
        return (theta[0] - 2.0) ** 2

    def true_constraint(theta):
        return jnp.array([jnp.mean(points + theta[0] > 1.0) - 0.1])

    def proxy_constraint(theta):
        above = jax.nn.sigmoid((points + theta[0] - 1.0) / 0.1)
        return jnp.array([jnp.mean(above) - 0.1])

    assert true_constraint(jnp.array([2.0]))[0] > 0.0
    result = jax.jit(
        lambda x0: alm.solve(
            objective,
            proxy_constraint,
            x0,
            is_eq,
            exact_constraints=true_constraint,
            optimizer=optax.adam(0.05),
            tol=0.0,
            outer_steps=30,
        )
    )(jnp.zeros(1))

    assert result.feasible
    assert int(jnp.sum(points + result.x[0] > 1.0)) <= 40
    # The constraint binds: the unconstrained optimum 2 is not returned.
    assert result.x[0] < 0.0


def test_zero_penalty_is_safe():
    values = jnp.array([0.0, -1.0, 2.0, 0.0, -3.0, 1.5])
    multiplier = jnp.array([0.0, 0.0, 0.0, 1.0, 2.0, -0.5])
    is_eq = jnp.array([False, False, False, False, False, True])
    state = alm.init(values, penalty=0.0, multiplier=multiplier)

    value, grad = jax.jit(
        jax.value_and_grad(lambda v: alm.lagrangian_term(v, state, is_eq))
    )(values)
    assert jnp.isfinite(value)
    assert jnp.all(jnp.isfinite(grad))
    # At ρ = 0 the PHR term is the ordinary Lagrangian term λ c.
    np.testing.assert_allclose(value, jnp.sum(multiplier * values), rtol=1e-6)
    np.testing.assert_allclose(grad, multiplier, rtol=1e-6)

    # Gradients with respect to the state are finite too (and zero by design).
    state_grad = jax.jit(
        jax.grad(lambda s: alm.lagrangian_term(values, s, is_eq), allow_int=True)
    )(state)
    assert jnp.all(jnp.isfinite(state_grad.penalty))

    new_state, status = jitted_update(is_eq)(state, values)
    for leaf in jax.tree.leaves((new_state, status)):
        assert jnp.all(jnp.isfinite(leaf))
    assert status.code != alm.NONFINITE


def test_lagrangian_term_gradient_is_next_multiplier():
    values = jnp.array([0.3, -0.2, -2.0, 0.5, -0.7])
    is_eq = jnp.array([False, False, False, True, True])
    state = alm.init(
        values, penalty=1.5, multiplier=jnp.array([1.0, 1.0, 1.0, 2.0, 2.0])
    )

    grad = jax.jit(jax.grad(lambda v: alm.lagrangian_term(v, state, is_eq)))(values)
    new_state, _ = jitted_update(is_eq)(state, values)
    np.testing.assert_allclose(grad, new_state.multiplier, rtol=1e-6)


def test_penalty_cap_on_infeasible_constraint():
    # 1 + x² <= 0 cannot hold: the run must end capped, with a finite state.
    is_eq = jnp.array([False])
    cap = 1e3
    result = jax.jit(
        lambda x0: alm.solve(
            lambda x: jnp.sum(x**2),
            lambda x: jnp.array([1.0 + jnp.sum(x**2)]),
            x0,
            is_eq,
            penalty_growth=10.0,
            penalty_max=cap,
            outer_steps=20,
        )
    )(jnp.array([0.7]))

    assert result.code == alm.PENALTY_CAPPED
    assert not result.feasible
    assert result.num_steps == 20
    assert result.state.penalty[0] == cap
    for leaf in jax.tree.leaves(result):
        assert jnp.all(jnp.isfinite(leaf))
    np.testing.assert_allclose(result.max_violation, 1.0, atol=1e-4)
