"""Generator backbones and their training drivers.

Two backbones, a conditional WGAN-GP in the manner of CTGAN (:func:`make_gan`) and
a conditional VAE in the manner of TVAE (:func:`make_vae`), share one protocol,
:class:`Backbone`: pure ``init`` / ``epoch`` / ``sample`` functions over a
:class:`TrainState` pytree, with a penalty hook for a constrained trainer.
:func:`fit` runs epochs with checkpoints; :func:`generate` samples in chunks.

Example::

    stats = DataStats.from_encoded(layout, x)
    backbone = make_vae(layout, stats, target="disease")
    state, history = fit(backbone, x, jax.random.key(0), epochs=300)
    rows = generate(backbone, state.params, jax.random.key(1), 10_000)
"""

from psygentab_jax._src.models.base import Backbone, PenaltyFn, TrainState, no_penalty
from psygentab_jax._src.models.gan import GANConfig, make_gan
from psygentab_jax._src.models.heads import CondSpec, DataStats, condition_vector
from psygentab_jax._src.models.vae import VAEConfig, make_vae
from psygentab_jax._src.train import (
    fit,
    generate,
    list_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)

__all__ = [
    "Backbone",
    "CondSpec",
    "DataStats",
    "GANConfig",
    "PenaltyFn",
    "TrainState",
    "VAEConfig",
    "condition_vector",
    "fit",
    "generate",
    "list_checkpoints",
    "make_gan",
    "make_vae",
    "no_penalty",
    "restore_checkpoint",
    "save_checkpoint",
]
