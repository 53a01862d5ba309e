"""Devices: data-parallel training and sampling over a one-axis mesh.

``Synthesizer(devices=8)`` (or ``mesh=data_mesh(8)``) splits every minibatch and
every sampled chunk along the mesh's ``"data"`` axis and replicates the rest; the
model and the sampled rows equal those of one device, to float rounding. For
several hosts, every process calls :func:`initialize` first, then builds the same
mesh over all devices. See :mod:`psygentab_jax._src.sharding`.
"""

from psygentab_jax._src.sharding import (
    DATA_AXIS,
    data_mesh,
    initialize,
    local,
    replicate,
)

__all__ = ["DATA_AXIS", "data_mesh", "initialize", "local", "replicate"]
