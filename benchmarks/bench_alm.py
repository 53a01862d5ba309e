"""Benchmark of the augmented Lagrangian solver (psygentab_jax.alm).

Run ``python benchmarks/bench_alm.py`` (or ``--quick`` for a smoke run). It prints
one markdown table with

* the time of one jitted dual update (:func:`alm.update`) for m constraints;
* the wall time of :func:`alm.solve` on random convex QPs beside SciPy's SLSQP and
  trust-constr on the same problems, with the largest objective gap to SLSQP;
* the speedup of solving K QPs with ``jax.vmap`` over a Python loop of the jitted
  single solve.

Times are medians over repeats, measured after a warm-up call (so compilation is
excluded and reported apart), with ``block_until_ready``.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import LinearConstraint, minimize

from psygentab_jax import alm

DIM, NUM_INEQ, NUM_EQ = 10, 6, 3


def timed(fn, *args, repeats):
    """Median wall time of ``fn(*args)`` after one warm-up call, and the warm-up."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), warmup


def random_qps(seed, count):
    """Convex QPs, feasible by construction around a random point."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(count, DIM, DIM))
    hessian = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(DIM)
    linear = 3.0 * rng.normal(size=(count, DIM))
    point = rng.normal(size=(count, DIM))
    matrix = rng.normal(size=(count, NUM_INEQ + NUM_EQ, DIM))
    slack = np.concatenate(
        [rng.uniform(0.0, 1.0, (count, NUM_INEQ)), np.zeros((count, NUM_EQ))], axis=1
    )
    offset = np.einsum("kmn,kn->km", matrix, point) + slack
    return hessian, linear, matrix, offset


def alm_qp(hessian, linear, matrix, offset):
    is_eq = jnp.arange(NUM_INEQ + NUM_EQ) >= NUM_INEQ

    def objective(x):
        return 0.5 * x @ hessian @ x + linear @ x

    def constraints(x):
        return matrix @ x - offset

    x0 = jnp.zeros(DIM, linear.dtype)
    return alm.solve(
        objective, constraints, x0, is_eq, tol=1e-9, inner_steps=40, outer_steps=40
    )


def scipy_qp(hessian, linear, matrix, offset, method):
    inequality, equality = slice(0, NUM_INEQ), slice(NUM_INEQ, None)

    def objective(x):
        return 0.5 * x @ hessian @ x + linear @ x

    def gradient(x):
        return hessian @ x + linear

    if method == "SLSQP":
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
        options = {"ftol": 1e-12, "maxiter": 1000}
        hess = None
    else:
        constraints = [
            LinearConstraint(matrix[inequality], -np.inf, offset[inequality]),
            LinearConstraint(matrix[equality], offset[equality], offset[equality]),
        ]
        options = {"gtol": 1e-9, "xtol": 1e-12, "maxiter": 5000}
        hess = lambda x: hessian  # noqa: E731
    return minimize(
        objective,
        np.zeros(DIM),
        jac=gradient,
        hess=hess,
        constraints=constraints,
        method=method,
        options=options,
    )


def time_update(m, repeats, *, jit=True):
    """Median time of one float32 dual update over ``m`` constraints (half of them
    equalities), and the warm-up call's time (compilation, when jitted)."""
    key = jax.random.key(m)
    values = jax.random.normal(key, (m,), jnp.float32)
    is_eq = jnp.arange(m) % 2 == 0
    state = alm.init(values)
    state, _ = alm.update(state, values, is_eq)

    def step(s, v):
        return alm.update(s, v, is_eq, smoothing=0.9)

    return timed(jax.jit(step) if jit else step, state, values, repeats=repeats)


def bench_update(sizes, repeats):
    rows = []
    for m in sizes:
        median, warmup = time_update(m, repeats)
        rows.append(
            (
                "dual update (float32)",
                f"m = {m:,}",
                f"{median * 1e6:,.1f} µs",
                f"compile + first call {warmup:.2f} s",
            )
        )
    return rows


def bench_qps(count, repeats):
    data = random_qps(0, count)
    single = jax.jit(alm_qp)
    alm_times, slsqp_times, trust_times, gaps, trust_gaps = [], [], [], [], []
    compile_time = None
    for k in range(count):
        problem = [d[k] for d in data]
        median, warmup = timed(
            single, *(jnp.asarray(p) for p in problem), repeats=repeats
        )
        compile_time = warmup if compile_time is None else compile_time
        result = single(*(jnp.asarray(p) for p in problem))
        alm_times.append(median)

        start = time.perf_counter()
        slsqp = scipy_qp(*problem, "SLSQP")
        slsqp_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        trust = scipy_qp(*problem, "trust-constr")
        trust_times.append(time.perf_counter() - start)

        scale = max(1.0, abs(slsqp.fun))
        gaps.append(abs(float(result.objective) - slsqp.fun) / scale)
        trust_gaps.append(abs(trust.fun - slsqp.fun) / scale)

    size = f"{count} QPs, n = {DIM}, {NUM_INEQ} ineq + {NUM_EQ} eq"
    return [
        (
            "alm.solve (jit, float64, L-BFGS inner)",
            size,
            f"{statistics.median(alm_times) * 1e3:.2f} ms / QP",
            f"max rel. objective gap to SLSQP {max(gaps):.1e}; "
            f"compile {compile_time:.1f} s",
        ),
        (
            "scipy SLSQP (ftol 1e-12)",
            size,
            f"{statistics.median(slsqp_times) * 1e3:.2f} ms / QP",
            "reference",
        ),
        (
            "scipy trust-constr (gtol 1e-9)",
            size,
            f"{statistics.median(trust_times) * 1e3:.2f} ms / QP",
            f"max rel. objective gap to SLSQP {max(trust_gaps):.1e}",
        ),
    ]


def bench_vmap(count, repeats):
    data = [jnp.asarray(d) for d in random_qps(1, count)]
    single = jax.jit(alm_qp)
    batched = jax.jit(jax.vmap(alm_qp))

    def loop(*data):
        return [single(*(d[k] for d in data)) for k in range(count)]

    loop_time, _ = timed(loop, *data, repeats=repeats)
    vmap_time, vmap_compile = timed(batched, *data, repeats=repeats)
    result = batched(*data)
    converged = int(jnp.sum(result.code == alm.CONVERGED))
    return [
        (
            "Python loop over jitted alm.solve",
            f"K = {count} QPs",
            f"{loop_time * 1e3:.1f} ms",
            "",
        ),
        (
            "jax.vmap(alm.solve), one program",
            f"K = {count} QPs",
            f"{vmap_time * 1e3:.1f} ms",
            f"speedup {loop_time / vmap_time:.1f}x; {converged}/{count} converged; "
            f"compile {vmap_compile:.1f} s",
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    # The QPs run in float64 (set here, not at import, so that importing this
    # module leaves other benchmarks in float32).
    jax.config.update("jax_enable_x64", True)

    if args.quick:
        sizes, update_repeats = (1, 100, 10_000), 5
        num_qps, qp_repeats, batch, batch_repeats = 3, 1, 8, 1
    else:
        sizes, update_repeats = (1, 100, 10_000, 1_000_000), 50
        num_qps, qp_repeats, batch, batch_repeats = 20, 5, 64, 5

    rows = bench_update(sizes, update_repeats)
    rows += bench_qps(num_qps, qp_repeats)
    rows += bench_vmap(batch, batch_repeats)

    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {device.platform} ({device.device_kind})\n")
    print("| benchmark | size | time (median) | notes |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
