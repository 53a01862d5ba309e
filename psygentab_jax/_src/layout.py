"""The static description of an encoded table: which slice is which column.

A generator reads a :class:`Layout` to choose its output activations (``tanh`` for a
``"scalar"`` block, a softmax / Gumbel-softmax for a ``"softmax"`` block); the
privacy surrogates and the audit read it to map encoded rows into the metric space.
This module imports neither pandas nor jax: a layout is plain, hashable data, so it
can be a static argument of a jitted function.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

BlockKind = Literal["scalar", "softmax"]
BlockRole = Literal["value", "mode", "category"]


@dataclasses.dataclass(frozen=True)
class Block:
    """One contiguous slice of an encoded row.

    Attributes:
      column: name of the source column.
      kind: ``"scalar"`` (one value, trained through ``tanh`` into ``[-1, 1]``) or
        ``"softmax"`` (a one-hot block of ``width`` entries).
      role: ``"value"`` (the normalized value of a continuous / integer / datetime
        column inside its mode), ``"mode"`` (the one-hot mode of that value; its
        entries are the Gaussian modes, then the column's point masses, then
        "missing" when the column has missing values) or ``"category"`` (the
        one-hot category of a categorical column; "missing" is its last entry when
        the column has missing values).
      start: first index of the slice in the encoded row.
      width: number of entries.
    """

    column: str
    kind: BlockKind
    role: BlockRole
    start: int
    width: int

    @property
    def stop(self) -> int:
        return self.start + self.width

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.width)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The ordered blocks of an encoded row, of total ``width`` entries.

    Blocks tile ``[0, width)`` without gaps, in column order; a continuous column
    contributes a ``"value"`` block followed by its ``"mode"`` block.
    """

    blocks: tuple[Block, ...]

    def __post_init__(self):
        position = 0
        for block in self.blocks:
            if block.start != position or block.width < 1:
                raise ValueError(f"layout blocks do not tile the row at {block}")
            position = block.stop

    @property
    def width(self) -> int:
        return self.blocks[-1].stop if self.blocks else 0

    @property
    def softmax_blocks(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.kind == "softmax")

    @property
    def scalar_blocks(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.kind == "scalar")

    @property
    def category_blocks(self) -> tuple[Block, ...]:
        """Blocks of categorical columns: what a conditional vector spans."""
        return tuple(b for b in self.blocks if b.role == "category")

    def blocks_of(self, column: str) -> tuple[Block, ...]:
        found = tuple(b for b in self.blocks if b.column == column)
        if not found:
            raise KeyError(f"column {column!r} has no block in this layout")
        return found

    def to_json(self) -> str:
        return json.dumps([dataclasses.asdict(b) for b in self.blocks])

    @classmethod
    def from_json(cls, text: str) -> Layout:
        return cls(tuple(Block(**entry) for entry in json.loads(text)))
