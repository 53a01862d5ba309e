"""Augmented Lagrangian Method: constraints for any objective, any optax optimizer.

Constraint values ``c`` have shape ``(m,)``: ``c_i <= 0`` for inequalities,
``c_i = 0`` where ``is_equality[i]``. A training step composes with optax::

    loss = lambda p: f(p) + alm.lagrangian_term(proxy(p), state, is_eq)
    updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
    params = optax.apply_updates(params, updates)
    state, status = alm.update(state, exact(params), is_eq)

and :func:`solve` runs a whole deterministic problem on device. See
:mod:`psygentab_jax._src.alm` for the conventions, formulas and references.
"""

from psygentab_jax._src.alm import (
    CONVERGED,
    NONFINITE,
    PENALTY_CAPPED,
    RUNNING,
    ALMState,
    ALMStatus,
    SolveResult,
    init,
    lagrangian_term,
    solve,
    update,
    violation,
)

__all__ = [
    "CONVERGED",
    "NONFINITE",
    "PENALTY_CAPPED",
    "RUNNING",
    "ALMState",
    "ALMStatus",
    "SolveResult",
    "init",
    "lagrangian_term",
    "solve",
    "update",
    "violation",
]
