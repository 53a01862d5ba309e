"""The backbone protocol: what every generator exposes to the trainers.

A :class:`Backbone` is a bundle of pure functions over pytrees, built by a factory
(:func:`~psygentab_jax._src.models.gan.make_gan`,
:func:`~psygentab_jax._src.models.vae.make_vae`) from a static layout, the training
table's category counts and a frozen config:

``init(key) -> TrainState``
  Fresh parameters, optimizer states and counters.
``epoch(state, data, key, penalty_args) -> (state, metrics)``
  One pass over ``data`` (shape (n, d), on device) as a single ``lax.scan`` over
  ``ceil(n / batch_size)`` shuffled minibatches of static size (the last one
  filled by wrapping around the permutation). Not jitted by the factory: the driver
  (:func:`~psygentab_jax._src.train.fit`) or a constrained trainer jits it once.
  ``penalty_args`` is a pytree of arrays handed to the factory's ``penalty_fn``;
  new values of the same structure do not retrace. ``metrics`` holds the means
  over the epoch's steps; ``metrics["penalty_aux"]`` is the mean of the penalty's
  auxiliary pytree.
``sample(params, key, n, cond=None, *, hard=False) -> rows``
  ``n`` encoded rows, shape (n, d), differentiable with respect to ``params``
  (Gumbel-softmax, straight-through when ``hard``). ``cond`` is ``None``
  (conditions drawn from the training frequencies) or a conditional vector of shape
  (cond_width,) or (n, cond_width); the conditioned block of each row is set to the
  requested one-hot. ``n`` and ``hard`` are static.
``sample_compact(params, key, n, cond=None) -> (values, codes)``
  ``n`` hard rows as float32 scalars (n, scalar blocks) and int32 categories
  (n, softmax blocks), the encoder's compact form: the rows of ``sample(...,
  hard=True)`` in distribution, drawn with one uniform per softmax block instead of
  one Gumbel variable per entry, and never materialized as one-hot blocks. The
  sampling path for large ``n``; its draws come from
  :mod:`~psygentab_jax._src.counter_rng` (a few times faster than ``jax.random``
  on CPU), so its rows are not those of ``sample`` for the same key.

The penalty hook: a factory's ``penalty_fn(fake_rows, penalty_args) -> (penalty,
aux)`` maps soft synthetic rows of shape (b, d) to a scalar that is added to the
generator's loss at every generator step (GAN) or to the loss on rows sampled from
the prior (VAE). This is where an augmented-Lagrangian term enters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import optax

from psygentab_jax._src.layout import Layout

Array = jax.Array
PenaltyFn = Callable[[Array, Any], tuple[Array, Any]]


@flax.struct.dataclass
class TrainState:
    """What is carried from one epoch to the next.

    Attributes:
      params: the networks' parameters, a dict of flax variable trees.
      opt_state: the optax states, a dict with the same keys as ``params``.
      step: shape () int32, optimizer steps taken (generator steps for a GAN).
      epoch: shape () int32, epochs finished.
    """

    params: Any
    opt_state: Any
    step: Array
    epoch: Array


class Backbone(NamedTuple):
    """A generator behind the trainer protocol (see the module docstring).

    Attributes:
      name: ``"gan"`` or ``"vae"``.
      layout: the encoded table's layout.
      config: the frozen hyperparameters.
      cond_width: entries of the conditional vector (0 without categorical
        columns).
      init: ``init(key) -> TrainState``.
      epoch: ``epoch(state, data, key, penalty_args) -> (state, metrics)``.
      sample: ``sample(params, key, n, cond=None, *, hard=False) -> rows``.
      sample_compact: ``sample_compact(params, key, n, cond=None) -> (values,
        codes)``: ``n`` hard rows in compact form, or ``None``.
    """

    name: str
    layout: Layout
    config: Any
    cond_width: int
    init: Callable[[Array], TrainState]
    epoch: Callable[..., tuple[TrainState, dict]]
    sample: Callable[..., Array]
    sample_compact: Callable[..., tuple[Array, Array]] | None = None


def no_penalty(rows: Array, penalty_args: Any) -> tuple[Array, dict]:
    """The default penalty: zero, with an empty aux."""
    del penalty_args
    return jax.numpy.zeros((), rows.dtype), {}


def epoch_mean(tree: Any) -> Any:
    """Means over the leading (step) axis of a scanned metrics pytree."""
    return jax.tree.map(lambda leaf: jax.numpy.mean(leaf, axis=0), tree)


def with_step_size(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` followed by a step-size factor kept in the optimizer state.

    The factor starts at 1 (the updates are unchanged, bit for bit) and lives in
    the state so that a trainer can shrink it with :func:`scale_step_size` after a
    divergence, without retracing.
    """
    return optax.chain(inner, optax.inject_hyperparams(optax.scale)(step_size=1.0))


def scale_step_size(opt_state: Any, factor: Array) -> Any:
    """Multiplies every step-size factor of :func:`with_step_size` in ``opt_state``.

    Args:
      opt_state: an optimizer state pytree (any nesting).
      factor: a scalar (or an array broadcasting against the factors, e.g. one
        per vmapped model).

    Returns:
      ``opt_state`` with its ``step_size`` hyperparameters multiplied by ``factor``.
    """

    def scale(path, leaf):
        named = any(getattr(key, "key", None) == "step_size" for key in path)
        return leaf * factor if named else leaf

    return jax.tree_util.tree_map_with_path(scale, opt_state)


def step_sizes(opt_state: Any) -> list[Array]:
    """The step-size factors of :func:`with_step_size` found in ``opt_state``."""
    found = jax.tree_util.tree_flatten_with_path(opt_state)[0]
    return [
        leaf
        for path, leaf in found
        if any(getattr(key, "key", None) == "step_size" for key in path)
    ]
