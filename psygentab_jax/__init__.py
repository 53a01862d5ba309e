"""psygentab-jax: privacy-constrained synthetic clinical tables in JAX.

The adapters (:func:`infer_schema`, :class:`TableEncoder`, :mod:`datasets`) turn a
pandas table into arrays and back; :class:`Synthesizer` runs the whole job. The
functional core stands alone: :mod:`psygentab_jax.alm` (the Augmented Lagrangian
solver), :mod:`psygentab_jax.surrogates`, :mod:`psygentab_jax.audit` and
:mod:`psygentab_jax.models`; :mod:`psygentab_jax.sharding` spreads training and
sampling over devices and hosts.
"""

from psygentab_jax import datasets, sharding
from psygentab_jax._src.constraints import Constraint
from psygentab_jax._src.constraints import parse as parse_constraint
from psygentab_jax._src.encoder import MetricColumn, MetricSpace, TableEncoder
from psygentab_jax._src.layout import Block, Layout
from psygentab_jax._src.schema import ColumnSpec, Schema, SchemaError, infer_schema
from psygentab_jax._src.synthesizer import (
    DEFAULT_CONSTRAINTS,
    DualConfig,
    Synthesizer,
    TrainingDiverged,
    frontier_points,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CONSTRAINTS",
    "Block",
    "ColumnSpec",
    "Constraint",
    "DualConfig",
    "Layout",
    "MetricColumn",
    "MetricSpace",
    "Schema",
    "SchemaError",
    "Synthesizer",
    "TableEncoder",
    "TrainingDiverged",
    "datasets",
    "frontier_points",
    "infer_schema",
    "parse_constraint",
    "sharding",
]
