"""Generator backbones behind one protocol (see :mod:`.base`)."""

from psygentab_jax._src.models.base import Backbone, TrainState, no_penalty
from psygentab_jax._src.models.gan import GANConfig, make_gan
from psygentab_jax._src.models.heads import CondSpec, DataStats, condition_vector
from psygentab_jax._src.models.vae import VAEConfig, make_vae

__all__ = [
    "Backbone",
    "CondSpec",
    "DataStats",
    "GANConfig",
    "TrainState",
    "VAEConfig",
    "condition_vector",
    "make_gan",
    "make_vae",
    "no_penalty",
]
