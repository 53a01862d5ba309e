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
    """

    name: str
    layout: Layout
    config: Any
    cond_width: int
    init: Callable[[Array], TrainState]
    epoch: Callable[..., tuple[TrainState, dict]]
    sample: Callable[..., Array]


def no_penalty(rows: Array, penalty_args: Any) -> tuple[Array, dict]:
    """The default penalty: zero, with an empty aux."""
    del penalty_args
    return jax.numpy.zeros((), rows.dtype), {}


def epoch_mean(tree: Any) -> Any:
    """Means over the leading (step) axis of a scanned metrics pytree."""
    return jax.tree.map(lambda leaf: jax.numpy.mean(leaf, axis=0), tree)
