"""Data parallelism over a one-axis device mesh.

Training and sampling share one layout of work: rows are split along the mesh's
data axis and everything else (parameters, optimizer and dual states, the training
table, keys) is replicated. XLA's SPMD partitioner turns a jitted step written for
one device into one program per device: each device computes the losses of its
share of a minibatch, and the gradient means become all-reduces. Generation splits
its blocks of rows the same way.

A mesh may span several processes (hosts) once :func:`initialize` has run in each
of them; every process then runs the same program on its own devices, and arrays
are built from host values that every process holds in full.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Environment variables read by :func:`initialize` (JAX reads the first itself).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "PSYGENTAB_NUM_PROCESSES"
PROCESS_ID_ENV = "PSYGENTAB_PROCESS_ID"
AUTO_ENV = "PSYGENTAB_DISTRIBUTED"


def data_mesh(devices: int | Sequence | None = None) -> Mesh:
    """A one-axis mesh named ``"data"``.

    Args:
      devices: ``None`` for every device (of every process, after
        :func:`initialize`), an int for the first that many, or a sequence of
        devices.

    Returns:
      The mesh.

    Raises:
      ValueError: more devices asked for than exist, or none.
    """
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices={devices}: this process sees {len(available)} device(s)"
            )
        chosen = available[:devices]
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices is an empty sequence")
    return jax.make_mesh(
        (len(chosen),),
        (DATA_AXIS,),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=chosen,
    )


def resolve(mesh: Mesh | None = None, devices=None) -> Mesh | None:
    """The mesh a synthesizer runs on: ``mesh``, one over ``devices``, or ``None``.

    ``None`` (neither given) keeps JAX's default single-device placement.

    Raises:
      ValueError: both given, or a mesh with more than one axis and none named
        ``"data"``.
    """
    if mesh is not None and devices is not None:
        raise ValueError("pass mesh= or devices=, not both")
    if mesh is not None:
        data_axis(mesh)
        return mesh
    if devices is not None:
        return data_mesh(devices)
    return None


def data_axis(mesh: Mesh) -> str:
    """The axis rows are split along: ``"data"``, or the only axis."""
    if DATA_AXIS in mesh.axis_names:
        return DATA_AXIS
    if len(mesh.axis_names) == 1:
        return mesh.axis_names[0]
    raise ValueError(
        f"a mesh with axes {mesh.axis_names} needs one named {DATA_AXIS!r}"
    )


def size(mesh: Mesh | None) -> int:
    """Devices along the data axis (1 without a mesh)."""
    return 1 if mesh is None else int(mesh.shape[data_axis(mesh)])


def rows(mesh: Mesh) -> NamedSharding:
    """Leading (row) axis split along the data axis, the others replicated."""
    return NamedSharding(mesh, PartitionSpec(data_axis(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def constrain_rows(x: jax.Array, sharding: NamedSharding | None) -> jax.Array:
    """Ask the partitioner to split ``x``'s rows along the mesh, inside a jit.

    A no-op without a sharding, and for a row count that the devices do not
    divide (XLA requires even splits; such arrays are left to the partitioner).
    """
    if sharding is None or x.ndim == 0:
        return x
    count = sharding.mesh.shape[sharding.spec[0]]
    if x.shape[0] % count:
        return x
    return jax.lax.with_sharding_constraint(x, sharding)


def jit_replicated(fn, mesh: Mesh | None):
    """``jax.jit(fn)``, with every output replicated over ``mesh`` when given.

    The inputs are expected replicated too (:func:`replicate`); the partitioner
    splits the work inside along the row constraints of the traced code.
    """
    if mesh is None:
        return jax.jit(fn)
    return jax.jit(fn, out_shardings=replicated(mesh))


def replicate(tree, mesh: Mesh | None):
    """Place every leaf of ``tree`` in full on every device of ``mesh``.

    Without a mesh, leaves become (uncommitted) device arrays as ``jnp.asarray``
    would make them. Typed PRNG keys are placed through their key data. Across
    processes every process must pass the same values.
    """
    if mesh is None:
        return jax.tree.map(_as_device_array, tree)
    sharding = replicated(mesh)

    def place(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key
        ):
            impl = jax.random.key_impl(leaf)
            data = place(jax.random.key_data(leaf))
            return jax.random.wrap_key_data(data, impl=impl)
        if jax.process_count() == 1:
            return jax.device_put(leaf, sharding)
        host = np.asarray(jax.device_get(leaf))
        return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

    return jax.tree.map(place, tree)


def _as_device_array(leaf):
    return leaf if isinstance(leaf, jax.Array) else jax.numpy.asarray(leaf)


def local(mesh: Mesh | None) -> Mesh | None:
    """The part of ``mesh`` on this process's devices (the mesh itself when all
    of it is local).

    Sampling runs on it, so that every process reads its rows back without
    crossing hosts; in a multi-host launch each process draws and writes its own
    part of the stream (``iter_samples(part=...)``).
    """
    if mesh is None:
        return None
    mine = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    if len(mine) == mesh.devices.size:
        return mesh
    return data_mesh(mine)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-process (multi-host) JAX run; call before any other JAX work.

    Arguments left ``None`` come from the environment: ``JAX_COORDINATOR_ADDRESS``
    (``host:port`` of process 0, reachable from every host),
    ``PSYGENTAB_NUM_PROCESSES`` and ``PSYGENTAB_PROCESS_ID`` (0 to
    ``num_processes - 1``). With ``PSYGENTAB_DISTRIBUTED=auto`` instead, JAX finds
    them itself on the clusters it knows (Slurm, Open MPI, Cloud TPU). With none of
    these set, nothing happens.

    Returns:
      Whether a multi-process run was joined.
    """
    coordinator_address = coordinator_address or os.environ.get(COORDINATOR_ENV)
    if num_processes is None and os.environ.get(NUM_PROCESSES_ENV):
        num_processes = int(os.environ[NUM_PROCESSES_ENV])
    if process_id is None and os.environ.get(PROCESS_ID_ENV):
        process_id = int(os.environ[PROCESS_ID_ENV])
    given = (coordinator_address, num_processes, process_id)
    if all(v is None for v in given):
        if os.environ.get(AUTO_ENV, "").lower() != "auto":
            return False
        jax.distributed.initialize()
        return True
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True
