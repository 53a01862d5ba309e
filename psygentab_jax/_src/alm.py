"""A standalone Augmented Lagrangian Method (ALM) for any mix of constraints.

Constraints come as one vector ``values`` of ``m`` entries with the convention

* ``values[i] <= 0`` for an inequality constraint ``g_i(θ) <= 0``,
* ``values[i] == 0`` for an equality constraint ``h_i(θ) = 0``,

and a boolean mask ``is_equality`` of shape ``(m,)`` says which is which. Every
operation is elementwise over the last axis, so one update serves any number and
any mix of constraints, and every state field accepts leading batch axes.

The Lagrangian is ``L(θ, λ) = f(θ) + Σ_i λ_i c_i(θ)`` with ``λ_i >= 0`` for the
inequalities. For Nocedal & Wright's convention ``L = f − λ c`` flip the sign of the
multipliers.

The module holds three layers:

* :func:`lagrangian_term` – the Powell–Hestenes–Rockafellar (PHR) term to add to
  any objective, differentiable in the constraint values.
* :func:`init` / :func:`update` – the dual step: first-order multiplier update,
  per-constraint progress-based penalty growth with a cap, optional moving-average
  smoothing and a proportional (PI-style) damping term; status returned as data.
* :func:`solve` – a jittable driver for deterministic problems that runs the inner
  minimization with any optax optimizer under ``lax.scan`` and the outer loop under
  ``lax.while_loop``, keeping the best feasible iterate.

It composes with any optax optimizer for the primal variables and wraps none::

    state = alm.init(exact(params))
    opt_state = optimizer.init(params)

    def loss(params, state):
        # proxy: a differentiable estimate of the constraints.
        return f(params) + alm.lagrangian_term(proxy(params), state, is_eq)

    for _ in range(num_steps):
        grads = jax.grad(loss)(params, state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # exact: the (possibly non-differentiable) measured constraint values.
        state, status = alm.update(state, exact(params), is_eq, smoothing=0.9)

References:
    Nocedal, J. & Wright, S. J. (2006). Numerical Optimization, 2nd ed., ch. 17.
    Bertsekas, D. P. (1982). Constrained Optimization and Lagrange Multiplier
    Methods. Academic Press, ch. 2 and 3.
    Birgin, E. G. & Martínez, J. M. (2014). Practical Augmented Lagrangian Methods
    for Constrained Optimization. SIAM (the progress test for penalty growth).
    Sohrabi, M. et al. (2024). On PI Controllers for Updating Lagrange Multipliers
    in Constrained Optimization. ICML (the proportional damping term).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

# Status codes returned by `update` and `solve`.
RUNNING = 0
CONVERGED = 1
PENALTY_CAPPED = 2
NONFINITE = 3


class ALMState(NamedTuple):
    """State carried between dual updates; ``...`` stands for optional batch axes.

    Attributes:
        multiplier: Lagrange multiplier estimates λ; ``>= 0`` for inequalities.
        penalty: per-constraint penalty parameters ρ ``>= 0``.
        smoothed: exponential moving average of the constraint values fed to
            :func:`update` (equal to the last value when ``smoothing=0``).
        reference: progress residual (violation, with complementarity for the
            inequalities) at the previous update, the yardstick of the progress test
            that decides penalty growth.
        step: number of dual updates done so far.
    """

    multiplier: chex.Array  # shape=(..., m)
    penalty: chex.Array  # shape=(..., m)
    smoothed: chex.Array  # shape=(..., m)
    reference: chex.Array  # shape=(..., m)
    step: chex.Array  # shape=(...), int32


class ALMStatus(NamedTuple):
    """Per-step diagnostics of :func:`update` (not carried between steps).

    Attributes:
        feasible: whether each constraint value passed to :func:`update` is within
            ``tol`` of feasibility.
        max_violation: largest violation over the constraints.
        complementarity: ``max_i |λ_i c_i|`` over the inequality constraints, with the
            updated multipliers.
        code: ``RUNNING`` (0), ``CONVERGED`` (1: all feasible and
            complementarity ``<= tol``), ``PENALTY_CAPPED`` (2: a constraint is
            still violated and its penalty has reached ``penalty_max``) or
            ``NONFINITE`` (3: a value, multiplier or penalty is NaN or infinite).
    """

    feasible: chex.Array  # shape=(..., m), bool
    max_violation: chex.Array  # shape=(...)
    complementarity: chex.Array  # shape=(...)
    code: chex.Array  # shape=(...), int32


class SolveResult(NamedTuple):
    """What :func:`solve` returns.

    Attributes:
        x: the returned iterate, a pytree like ``x0``: the feasible iterate with the
            lowest objective seen, or the least-violating iterate if none was feasible.
        multiplier: the multipliers computed at that iterate.
        objective: the objective at that iterate.
        max_violation: the largest constraint violation at that iterate.
        code: the status code of the last outer step (see :class:`ALMStatus`).
        feasible: whether the returned iterate has ``max_violation <= tol``.
        num_steps: number of outer steps run.
        state: the final :class:`ALMState`.
    """

    x: Any
    multiplier: chex.Array  # shape=(m,)
    objective: chex.Array  # shape=()
    max_violation: chex.Array  # shape=()
    code: chex.Array  # shape=(), int32
    feasible: chex.Array  # shape=(), bool
    num_steps: chex.Array  # shape=(), int32
    state: ALMState


def violation(values: chex.Array, is_equality: chex.Array) -> chex.Array:
    """Elementwise constraint violation: ``|h|`` for equalities, ``max(g, 0)`` else.

    Args:
        values: constraint values, shape ``(..., m)``.
        is_equality: boolean mask, shape ``(m,)`` or broadcastable to ``values``.

    Returns:
        The non-negative violations, shape ``(..., m)``.
    """
    return jnp.where(is_equality, jnp.abs(values), jnp.maximum(values, 0.0))


def init(
    values: chex.Array,
    *,
    penalty: float | chex.Array = 1.0,
    multiplier: float | chex.Array = 0.0,
) -> ALMState:
    """Creates the initial state.

    Args:
        values: a template of the constraint values, shape ``(..., m)``; only its
            shape and dtype are used. Leading axes become batch axes of the state.
        penalty: initial penalty ρ₀, a scalar or an array broadcastable to
            ``values``.
        multiplier: initial multiplier λ₀ (keep it ``>= 0`` for inequalities).

    Returns:
        An :class:`ALMState` whose array fields have the shape of ``values``.
    """
    values = jnp.asarray(values)
    dtype = values.dtype if jnp.issubdtype(values.dtype, jnp.floating) else float
    zeros = jnp.zeros(values.shape, dtype)
    return ALMState(
        multiplier=zeros + jnp.asarray(multiplier, dtype),
        penalty=zeros + jnp.asarray(penalty, dtype),
        smoothed=zeros,
        reference=zeros,
        step=jnp.zeros(values.shape[:-1], jnp.int32),
    )


def lagrangian_term(
    values: chex.Array, state: ALMState, is_equality: chex.Array
) -> chex.Array:
    """The Powell–Hestenes–Rockafellar augmented Lagrangian term.

    For an equality ``h`` the term is ``λ h + (ρ/2) h²``. For an inequality
    ``g <= 0`` it is ``(1/(2ρ)) (max(0, λ + ρ g)² − λ²)``, which equals
    ``λ g + (ρ/2) g²`` where ``λ + ρ g > 0`` and ``−λ²/(2ρ)`` elsewhere
    (Nocedal & Wright 2006, ch. 17; Bertsekas 1982, ch. 3). Its gradient in ``g``
    is ``max(0, λ + ρ g)``, the next multiplier estimate.

    The term is finite, with finite gradients, for every ``ρ >= 0``, including
    ``ρ = 0`` where it reduces to the ordinary Lagrangian ``λ c``: the branch that
    divides by ρ is evaluated on a safe denominator (the "double where" trick).

    Args:
        values: differentiable constraint values (the proxy), shape ``(..., m)``.
        state: current :class:`ALMState`; its multipliers and penalties are treated as
            constants (no gradient flows into them).
        is_equality: boolean mask, shape ``(m,)``.

    Returns:
        The term summed over the constraints, shape ``(...)`` (a scalar when
        unbatched). Add it to the objective being minimized.
    """
    multiplier = jax.lax.stop_gradient(state.multiplier)
    penalty = jax.lax.stop_gradient(state.penalty)

    smooth = is_equality | (multiplier + penalty * values > 0) | (penalty <= 0)
    quadratic = multiplier * values + 0.5 * penalty * values**2
    safe_penalty = jnp.where(smooth, 1.0, penalty)
    flat = -(multiplier**2) / (2.0 * safe_penalty)
    return jnp.sum(jnp.where(smooth, quadratic, flat), axis=-1)


def update(
    state: ALMState,
    values: chex.Array,
    is_equality: chex.Array,
    *,
    penalty_growth: float = 2.0,
    penalty_max: float | chex.Array = 1e4,
    progress: float = 0.25,
    smoothing: float = 0.0,
    kp: float = 0.0,
    dual_rate: float = 1.0,
    tol: float = 1e-6,
) -> tuple[ALMState, ALMStatus]:
    """One dual step: multipliers, penalties and the status.

    With ``e_t`` the smoothed constraint value
    ``e_t = β e_{t−1} + (1 − β) c_t`` (``β = smoothing``; ``e_0 = c_0``) the
    multipliers follow the first-order update (Nocedal & Wright 2006, ch. 17;
    Bertsekas 1982, ch. 2), with an optional proportional term::

        λ ← λ + η ρ (e_t + kp (e_t − e_{t−1}))        for equalities,
        λ ← max(0, λ + η ρ (e_t + kp (e_t − e_{t−1})))  for inequalities.

    With ``η = 1``, ``kp = 0`` and ``smoothing = 0`` this is the classical
    ``λ ← max(0, λ + ρ g)``, the update consistent with :func:`lagrangian_term`.
    In stochastic training a dual rate ``η < 1`` (Bertsekas 1982, ch. 2, also
    analyses multiplier stepsizes other than ρ) lets a large penalty steady the
    primal iterates while the multipliers average out the noise, and ``kp > 0``
    damps oscillation of the multipliers, in the spirit of the PI / νPI
    controllers of Sohrabi et al. (2024).

    The penalty of constraint ``i`` then grows, ``ρ_i ← min(γ ρ_i, ρ_max)``, only
    when its residual ``v_i`` stays above ``tol`` and did not shrink enough since
    the previous update: ``v_i > τ · v_i^prev`` (Birgin & Martínez 2014,
    ch. 4; ``γ = penalty_growth``, ``τ = progress``). The residual is
    ``|e_t|`` for an equality and ``|max(e_t, −λ/ρ)|`` for an inequality, which is
    zero when the constraint holds with complementarity, so that the multiplier of
    a satisfied constraint also reaches 0 quickly. The penalty never grows on the
    first update.

    Args:
        state: current :class:`ALMState`, fields of shape ``(..., m)``.
        values: exact constraint values at the current iterate, shape ``(..., m)``.
            They need not be differentiable (a count, a step function, a noisy
            estimate); no gradient is taken through this function.
        is_equality: boolean mask, shape ``(m,)``.
        penalty_growth: factor γ ``>= 1`` by which a stalled penalty grows.
        penalty_max: cap ρ_max on the penalties; scalar or shape ``(m,)``.
        progress: factor τ in ``(0, 1)`` of the progress test.
        smoothing: moving-average factor β in ``[0, 1)``; ``0`` uses the raw values.
        kp: proportional gain of the damping term; ``0`` switches it off.
        dual_rate: factor η of the multiplier step, ``η ρ``; ``1`` is classical.
        tol: feasibility and complementarity tolerance.

    Returns:
        ``(new_state, status)``: the next :class:`ALMState` and an
        :class:`ALMStatus` that diagnoses ``values`` under the new multipliers.
    """
    values = jax.lax.stop_gradient(jnp.asarray(values, state.multiplier.dtype))
    first = (state.step == 0)[..., None]

    smoothed = jnp.where(
        first, values, smoothing * state.smoothed + (1.0 - smoothing) * values
    )
    previous = jnp.where(first, smoothed, state.smoothed)
    signal = smoothed + kp * (smoothed - previous)
    raw = state.multiplier + dual_rate * state.penalty * signal
    multiplier = jnp.where(is_equality, raw, jnp.maximum(raw, 0.0))

    residual = _progress_residual(smoothed, state, is_equality)
    stalled = ~first & (residual > tol) & (residual > progress * state.reference)
    grown = jnp.minimum(penalty_growth * state.penalty, penalty_max)
    penalty = jnp.where(stalled, grown, state.penalty)

    new_state = ALMState(
        multiplier=multiplier,
        penalty=penalty,
        smoothed=smoothed,
        reference=residual,
        step=state.step + 1,
    )
    return new_state, _status(new_state, values, is_equality, penalty_max, tol)


def _progress_residual(
    smoothed: chex.Array, state: ALMState, is_equality: chex.Array
) -> chex.Array:
    """``|h|`` for equalities, ``|max(g, −λ/ρ)|`` for inequalities.

    The inequality measure vanishes exactly when ``g <= 0`` and ``λ g = 0`` (for
    ``ρ > 0``), so the penalty also grows when a multiplier of a satisfied
    constraint is slow to reach 0 (Birgin & Martínez 2014, ch. 4). It is the
    size of the multiplier step divided by ρ. With ``ρ = 0`` it is ``max(g, 0)``.
    """
    positive = state.penalty > 0
    safe_penalty = jnp.where(positive, state.penalty, 1.0)
    slack = jnp.where(positive, -state.multiplier / safe_penalty, 0.0)
    return jnp.where(
        is_equality, jnp.abs(smoothed), jnp.abs(jnp.maximum(smoothed, slack))
    )


def _status(
    state: ALMState,
    values: chex.Array,
    is_equality: chex.Array,
    penalty_max: float | chex.Array,
    tol: float,
) -> ALMStatus:
    """Diagnoses ``values`` under the updated ``state``."""
    current = violation(values, is_equality)
    feasible = current <= tol
    max_violation = jnp.max(current, axis=-1, initial=0.0)
    products = jnp.where(is_equality, 0.0, jnp.abs(state.multiplier * values))
    complementarity = jnp.max(products, axis=-1, initial=0.0)

    finite = jnp.all(
        jnp.isfinite(values)
        & jnp.isfinite(state.multiplier)
        & jnp.isfinite(state.penalty),
        axis=-1,
    )
    converged = jnp.all(feasible, axis=-1) & (complementarity <= tol)
    capped = jnp.any((state.penalty >= penalty_max) & ~feasible, axis=-1)
    code = jnp.where(
        ~finite,
        NONFINITE,
        jnp.where(converged, CONVERGED, jnp.where(capped, PENALTY_CAPPED, RUNNING)),
    ).astype(jnp.int32)
    return ALMStatus(feasible, max_violation, complementarity, code)


def _tree_where(condition: chex.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def _tree_finite(tree: Any) -> chex.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def solve(
    objective: Callable[[Any], chex.Array],
    constraints: Callable[[Any], chex.Array],
    x0: Any,
    is_equality: chex.Array,
    *,
    optimizer: optax.GradientTransformation | None = None,
    inner_steps: int = 100,
    outer_steps: int = 50,
    exact_constraints: Callable[[Any], chex.Array] | None = None,
    penalty: float = 1.0,
    penalty_growth: float = 10.0,
    penalty_max: float = 1e6,
    progress: float = 0.25,
    tol: float = 1e-6,
    reset_optimizer: bool = True,
) -> SolveResult:
    """Solves ``min f(x)`` s.t. ``c_i(x) <= 0`` (inequalities), ``c_i(x) = 0``.

    Each outer step approximately minimizes the augmented Lagrangian
    ``f(x) + lagrangian_term(c(x), state, is_equality)`` in ``x`` with
    ``inner_steps`` steps of ``optimizer`` (under ``lax.scan``), then calls
    :func:`update` on the exact constraint values (Nocedal & Wright 2006, ch. 17;
    Bertsekas 1982, ch. 2). The outer loop is a ``lax.while_loop`` that stops at
    ``outer_steps`` or once the status is ``CONVERGED`` or ``NONFINITE``, so the
    whole solve can run under ``jax.jit`` and ``jax.vmap``.

    Args:
        objective: ``f(x) -> ()``, differentiable.
        constraints: ``c(x) -> (m,)``, differentiable (the proxy when
            ``exact_constraints`` is given).
        x0: initial point, any pytree of float arrays.
        is_equality: boolean mask, shape ``(m,)``.
        optimizer: any optax transformation for the inner minimization; defaults to
            ``optax.lbfgs()`` (zoom linesearch). Transformations that take
            ``value``, ``grad`` and ``value_fn`` extra arguments receive them.
        inner_steps: optimizer steps per outer step.
        outer_steps: maximum number of outer (dual) steps.
        exact_constraints: ``c(x) -> (m,)`` used for the dual update, feasibility and
            the choice of the returned iterate; need not be differentiable. Defaults
            to ``constraints``.
        penalty: initial penalty ρ₀.
        penalty_growth: see :func:`update`.
        penalty_max: see :func:`update`.
        progress: see :func:`update`.
        tol: feasibility and complementarity tolerance.
        reset_optimizer: re-initialize the optimizer state at each outer step (the
            inner objective changes with the multipliers).

    Returns:
        A :class:`SolveResult`.

    Example::

        result = jax.jit(lambda x0: alm.solve(f, c, x0, is_eq))(x0)
    """
    if optimizer is None:
        optimizer = optax.lbfgs()
    optimizer = optax.with_extra_args_support(optimizer)
    exact = constraints if exact_constraints is None else exact_constraints
    is_equality = jnp.asarray(is_equality, bool)

    def inner(x, opt_state, state):
        def loss(x):
            return objective(x) + lagrangian_term(constraints(x), state, is_equality)

        def body(carry, _):
            x, opt_state = carry
            value, grad = jax.value_and_grad(loss)(x)
            updates, new_opt_state = optimizer.update(
                grad, opt_state, x, value=value, grad=grad, value_fn=loss
            )
            new_x = optax.apply_updates(x, updates)
            ok = _tree_finite(new_x)
            new_opt_state = _tree_where(ok, new_opt_state, opt_state)
            return (_tree_where(ok, new_x, x), new_opt_state), None

        (x, opt_state), _ = jax.lax.scan(body, (x, opt_state), length=inner_steps)
        return x, opt_state

    values0 = exact(x0)
    state0 = init(values0, penalty=penalty)
    dtype = state0.multiplier.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    carry0 = dict(
        k=jnp.zeros((), jnp.int32),
        x=x0,
        opt_state=optimizer.init(x0),
        state=state0,
        code=jnp.asarray(RUNNING, jnp.int32),
        best_x=x0,
        best_multiplier=state0.multiplier,
        best_objective=inf,
        best_violation=inf,
        best_feasible=jnp.zeros((), bool),
    )

    def cond(c):
        done = (c["code"] == CONVERGED) | (c["code"] == NONFINITE)
        return (c["k"] < outer_steps) & ~done

    def body(c):
        opt_state = optimizer.init(c["x"]) if reset_optimizer else c["opt_state"]
        x, opt_state = inner(c["x"], opt_state, c["state"])
        state, status = update(
            c["state"],
            exact(x),
            is_equality,
            penalty_growth=penalty_growth,
            penalty_max=penalty_max,
            progress=progress,
            tol=tol,
        )

        f = jnp.asarray(objective(x), dtype)
        feasible = (status.max_violation <= tol) & jnp.isfinite(f)
        better = jnp.where(
            feasible,
            ~c["best_feasible"] | (f < c["best_objective"]),
            ~c["best_feasible"] & (status.max_violation < c["best_violation"]),
        )

        def where(new, old):
            return jnp.where(better, new, old)

        return dict(
            k=c["k"] + 1,
            x=x,
            opt_state=opt_state,
            state=state,
            code=status.code,
            best_x=_tree_where(better, x, c["best_x"]),
            best_multiplier=where(state.multiplier, c["best_multiplier"]),
            best_objective=where(f, c["best_objective"]),
            best_violation=where(status.max_violation, c["best_violation"]),
            best_feasible=c["best_feasible"] | feasible,
        )

    c = jax.lax.while_loop(cond, body, carry0)
    return SolveResult(
        x=c["best_x"],
        multiplier=c["best_multiplier"],
        objective=c["best_objective"],
        max_violation=c["best_violation"],
        code=c["code"],
        feasible=c["best_feasible"],
        num_steps=c["k"],
        state=c["state"],
    )
