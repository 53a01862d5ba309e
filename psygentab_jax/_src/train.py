"""Drivers around a backbone: jitted epochs, checkpoints and chunked sampling.

:func:`fit` is a Python loop over epochs that calls the backbone's epoch under
``jax.jit`` (traced once per backbone and data shape). Epoch ``i`` uses the key
``fold_in(key, i)``, so a run resumed from its last checkpoint reproduces an
uninterrupted run of the same seed. Checkpoints are msgpack bytes of the
:class:`~psygentab_jax._src.models.base.TrainState` written by
``flax.serialization`` to a temporary file and moved into place with
``os.replace``; no pickle is involved.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from psygentab_jax._src.models.base import Backbone, TrainState

Array = jax.Array
Callback = Callable[[int, TrainState, dict], Any]

_CHECKPOINT = re.compile(r"^epoch_(\d{7})\.msgpack$")


def checkpoint_path(directory: str | os.PathLike, epoch: int) -> str:
    """The file that holds the state after ``epoch`` epochs."""
    return os.path.join(os.fspath(directory), f"epoch_{epoch:07d}.msgpack")


def save_checkpoint(
    directory: str | os.PathLike, state: TrainState, *, keep: int = 2
) -> str:
    """Writes ``state`` atomically and keeps only the newest ``keep`` checkpoints.

    Args:
      directory: checkpoint folder (created when missing).
      state: the state to write.
      keep: number of checkpoints left on disk.

    Returns:
      The path written.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    path = checkpoint_path(directory, int(state.epoch))
    payload = flax.serialization.to_bytes(jax.device_get(state))
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    for old in list_checkpoints(directory)[:-keep]:
        os.remove(old)
    return path


def list_checkpoints(directory: str | os.PathLike) -> list[str]:
    """Checkpoint files in ``directory``, oldest first."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    names = sorted(name for name in os.listdir(directory) if _CHECKPOINT.match(name))
    return [os.path.join(directory, name) for name in names]


def restore_checkpoint(path: str | os.PathLike, template: TrainState) -> TrainState:
    """Reads a checkpoint into the structure of ``template`` (e.g. ``init(key)``)."""
    with open(path, "rb") as file:
        return flax.serialization.from_bytes(template, file.read())


@functools.lru_cache(maxsize=32)
def _jitted_epoch(epoch_fn):
    return jax.jit(epoch_fn)


@functools.lru_cache(maxsize=32)
def _jitted_sample(sample_fn):
    return jax.jit(sample_fn, static_argnames=("n", "hard"))


def fit(
    backbone: Backbone,
    data,
    key: Array,
    epochs: int,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    every: int = 10,
    resume: bool = True,
    callback: Callback | None = None,
    penalty_args: Any = None,
    state: TrainState | None = None,
) -> tuple[TrainState, list[dict]]:
    """Trains a backbone for ``epochs`` epochs.

    Args:
      backbone: the model.
      data: encoded training rows, shape (n, d); moved to the device once.
      key: PRNG key of the run: ``init`` draws from ``split(key)[0]`` and epoch
        ``i`` (counted from 0 over the whole run) from
        ``fold_in(split(key)[1], i)``.
      epochs: total epochs of the run (a resumed run stops at the same total).
      checkpoint_dir: where checkpoints go; ``None`` writes none.
      every: write a checkpoint after every ``every`` epochs and after the last.
      resume: start from the newest checkpoint in ``checkpoint_dir`` if any.
      callback: ``callback(epoch, state, metrics)`` after each epoch, with
        ``metrics`` as Python floats (nested for ``penalty_aux``).
      penalty_args: pytree handed to the backbone's penalty function.
      state: a starting state; ``init`` of a key derived from ``key`` when
        ``None``.

    Returns:
      ``(state, history)``: the final state and one metrics dict per epoch run in
      this call (a resumed run reports only the epochs after its checkpoint).
    """
    k_init, k_epochs = jax.random.split(key)
    if state is None:
        state = backbone.init(k_init)
    if checkpoint_dir is not None and resume:
        found = list_checkpoints(checkpoint_dir)
        if found:
            state = restore_checkpoint(found[-1], state)

    data = jnp.asarray(data, jnp.float32)
    epoch_fn = _jitted_epoch(backbone.epoch)
    history = []
    for i in range(int(state.epoch), epochs):
        state, metrics = epoch_fn(
            state, data, jax.random.fold_in(k_epochs, i), penalty_args
        )
        metrics = jax.tree.map(float, jax.device_get(metrics))
        history.append(metrics)
        done = i + 1
        if checkpoint_dir is not None and (done % every == 0 or done == epochs):
            save_checkpoint(checkpoint_dir, state)
        if callback is not None:
            callback(done, state, metrics)
    return state, history


def generate(
    backbone: Backbone,
    params: Any,
    key: Array,
    n: int,
    *,
    cond=None,
    hard: bool = True,
    batch_size: int = 65_536,
) -> np.ndarray:
    """Samples ``n`` encoded rows in jitted chunks of static size.

    Args:
      backbone: the model.
      params: its parameters (``state.params``).
      key: PRNG key; chunk ``i`` uses ``fold_in(key, i)``.
      n: number of rows.
      cond: a conditional vector of shape (cond_width,), or ``None`` for
        unconditional sampling.
      hard: exact one-hot softmax blocks.
      batch_size: rows per chunk; the last chunk is cut to size.

    Returns:
      float32 array of shape (n, d).
    """
    sample = _jitted_sample(backbone.sample)
    chunk = min(batch_size, n)
    parts = []
    for i in range(-(-n // chunk)):
        rows = sample(params, jax.random.fold_in(key, i), n=chunk, cond=cond, hard=hard)
        parts.append(np.asarray(rows))
    return np.concatenate(parts)[:n]
