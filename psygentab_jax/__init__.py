"""psygentab-jax: privacy-constrained synthetic clinical tables in JAX."""

from psygentab_jax._src.encoder import MetricColumn, MetricSpace, TableEncoder
from psygentab_jax._src.layout import Block, Layout
from psygentab_jax._src.schema import ColumnSpec, Schema, SchemaError, infer_schema

__version__ = "0.1.0"

__all__ = [
    "Block",
    "ColumnSpec",
    "Layout",
    "MetricColumn",
    "MetricSpace",
    "Schema",
    "SchemaError",
    "TableEncoder",
    "infer_schema",
]
