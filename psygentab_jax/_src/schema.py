"""Schema inference: one readable, editable entry per column of a clinical table.

This is the pandas side of the adapters. A :class:`Schema` is plain data that
round-trips through JSON, so a data steward can inspect it, correct a column's kind
and hand it back (``psygentab schema FILE > schema.json``, edit, ``--schema``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal[
    "continuous", "integer", "categorical", "datetime", "constant", "identifier"
]
KINDS: tuple[str, ...] = (
    "continuous",
    "integer",
    "categorical",
    "datetime",
    "constant",
    "identifier",
)

# Integer-valued columns with at most this many distinct values are codes.
MAX_CODE_LEVELS = 10
# A text column with more distinct values than this is not learned as categories.
MAX_CATEGORIES = 1000
# Names that announce a record or patient key.
_ID_NAME = re.compile(
    r"(^|[_\s.-])(id|pid|mrn|uuid|guid)$|^(id|pid|mrn)([_\s.-]|$)|_id$|^.*_key$",
    re.IGNORECASE,
)


class SchemaError(ValueError):
    """A table, column or schema that cannot be learned as it stands."""


@dataclasses.dataclass
class ColumnSpec:
    """How one column is learned and written back.

    Attributes:
      name: the column's name in the table.
      kind: one of ``continuous`` (real-valued), ``integer`` (discrete numeric,
        decoded to integers within the observed range), ``categorical`` (strings,
        booleans, low-cardinality codes), ``datetime``, ``constant`` (a single
        value, not learned) or ``identifier`` (a record or patient key, never
        learned; synthetic rows get fresh keys).
      dtype: the pandas dtype the decoded column is cast back to.
      missing: whether the column had missing values when the schema was made.
    """

    name: str
    kind: str
    dtype: str
    missing: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise SchemaError(
                f"column {self.name!r}: unknown kind {self.kind!r}; "
                f"choose one of {', '.join(KINDS)}"
            )


@dataclasses.dataclass
class Schema:
    """The ordered column specs of a table, and its optional target column."""

    columns: list[ColumnSpec]
    target: str | None = None

    def __post_init__(self):
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicate column names in schema: {dup}")
        if self.target is not None and self.target not in names:
            raise SchemaError(f"target column {self.target!r} is not in the schema")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "identifier"]

    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"column {name!r} is not in the schema")

    def with_kinds(self, **kinds: str) -> Schema:
        """A copy with some columns' kinds overridden, e.g. ``age="integer"``."""
        return self.override(kinds)

    def override(self, kinds: dict[str, str]) -> Schema:
        """A copy with the kinds of the named columns replaced."""
        unknown = sorted(set(kinds) - set(self.names))
        if unknown:
            raise SchemaError(f"cannot override unknown columns: {unknown}")
        columns = [
            dataclasses.replace(c, kind=kinds.get(c.name, c.kind)) for c in self.columns
        ]
        return Schema(columns, self.target)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "columns": [dataclasses.asdict(c) for c in self.columns],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        try:
            columns = [ColumnSpec(**entry) for entry in data["columns"]]
        except (KeyError, TypeError) as err:
            raise SchemaError(f"not a psygentab schema: {err}") from None
        for column in columns:
            _check_spec(column)
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise SchemaError(f"schema target must be a column name, not {target!r}")
        return cls(columns, target)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SchemaError(f"schema is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise SchemaError("not a psygentab schema: expected a JSON object")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise SchemaError(f"cannot read schema file {str(path)!r}: {err}") from None
        return cls.from_json(text)

    def check_frame(self, df: pd.DataFrame) -> None:
        """Raise :class:`SchemaError` unless ``df`` has exactly the schema's columns.

        A column the schema does not list is an error too: learning silently
        without it would drop it from every synthetic row.
        """
        present = [str(c) for c in df.columns]
        missing = [n for n in self.names if n not in present]
        if missing:
            raise SchemaError(f"the table lacks schema columns {missing}")
        extra = [n for n in present if n not in self.names]
        if extra:
            raise SchemaError(
                f"the table has columns the schema does not list: {extra}; add "
                "them to the schema (kind 'identifier' to leave one unlearned) or "
                "drop them from the table"
            )


def _check_spec(column: ColumnSpec) -> None:
    """Reject a schema entry edited into something no table column can be."""
    if not isinstance(column.name, str) or not column.name.strip():
        raise SchemaError(f"schema column name must be a non-empty string: {column}")
    try:
        pd.api.types.pandas_dtype(column.dtype)
    except TypeError:
        raise SchemaError(
            f"column {column.name!r}: unknown dtype {column.dtype!r} in the schema"
        ) from None
    if not isinstance(column.missing, bool):
        raise SchemaError(f"column {column.name!r}: 'missing' must be true or false")


def check_frame(df: pd.DataFrame, source: str = "the table") -> None:
    """Reject frames no synthesizer can learn, naming what is wrong."""
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{source}: expected a pandas DataFrame, got {type(df)}")
    if df.shape[1] == 0:
        raise SchemaError(f"{source} has no columns")
    if len(df) == 0:
        raise SchemaError(f"{source} has no rows")
    names = [str(c) for c in df.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SchemaError(f"{source} has duplicate column names: {duplicated}")
    empty = [
        c for c in df.columns if str(c).strip() == "" or str(c).startswith("Unnamed:")
    ]
    if empty:
        raise SchemaError(f"{source} has columns without a name at {empty}")
    for name in df.columns:
        series = df[name]
        if series.isna().all():
            raise SchemaError(f"column {name!r} is entirely missing")
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(
            series
        ):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise SchemaError(
                    f"column {name!r} has infinite values; replace them with a "
                    "number or a missing value"
                )
        elif _is_text(series):
            _reject_mixed(name, series)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def _reject_mixed(name: str, series: pd.Series) -> None:
    values = series.dropna()
    if not pd.api.types.is_object_dtype(series):
        return
    kinds = {type(v) for v in values.iloc[: min(len(values), 100_000)]}
    nested = sorted(
        k.__name__ for k in kinds if issubclass(k, (list, tuple, dict, set, np.ndarray))
    )
    if nested:
        raise SchemaError(
            f"column {name!r} holds nested values ({', '.join(nested)}); flatten "
            "it into one plain column per value"
        )
    numeric = {k for k in kinds if issubclass(k, (int, float, np.number))} - {
        bool,
        np.bool_,
    }
    text = {k for k in kinds if issubclass(k, str)}
    if numeric and text:
        raise SchemaError(
            f"column {name!r} mixes numbers and strings; cast it to one type"
        )


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    *,
    kinds: dict[str, str] | None = None,
    max_code_levels: int = MAX_CODE_LEVELS,
    max_categories: int = MAX_CATEGORIES,
    warn: bool = True,
) -> Schema:
    """Infer each column's kind from its values and its name.

    Rules, in order: a column with one value and no missing entries is
    ``constant``; datetime dtypes are ``datetime``; booleans are ``categorical``;
    a column whose name reads as a key (``id``, ``pid``, ``*_id``, ``mrn``) with at
    least half its values distinct, a string or integer column with 95 % or more of
    its values distinct, or a run of consecutive integers with 98 % distinct values
    is an ``identifier``; strings are ``categorical``; integer-valued numbers with
    at most ``max_code_levels`` levels are ``categorical`` codes, with more they are
    ``integer``; other numbers are ``continuous``. The target, if given, is always
    ``categorical`` when it has at most 50 levels.

    A text column with more than ``max_categories`` distinct values (free text, a
    code list too long to learn) is not learned: it becomes an ``identifier``,
    with its own warning. Text that is almost all numbers but for a few words,
    and dates written as text in another format than ISO 8601 (``2020-01-31``) or
    in several formats, are errors: guessing what they mean would be silent.

    Args:
      df: the table; every column may have missing values.
      target: the outcome column, if any.
      kinds: overrides, ``{column: kind}``, applied after inference.
      max_code_levels: the most levels an integer-coded column may have to count
        as categorical.
      max_categories: the most distinct values a text column may have to be
        learned as categorical.
      warn: emit a :class:`UserWarning` naming the identifiers excluded, the text
        columns with too many values, and target classes of a single row.

    Returns:
      The :class:`Schema`.

    Raises:
      SchemaError: on an empty frame, duplicate names, an unknown target, a
        target with a single class, an unknown override, a column that is
        entirely missing, infinities, nested values, an object column mixing
        numbers and strings, numbers stored as text with stray words, or dates
        as text in a non-ISO or mixed format.
    """
    check_frame(df)
    if target is not None and target not in df.columns:
        raise SchemaError(f"target column {target!r} does not exist in the table")
    rare = []
    if target is not None:
        counts = df[target].value_counts(dropna=True)
        if len(counts) < 2:
            raise SchemaError(
                f"target column {target!r} has a single class "
                f"({counts.index[0]!r}); a target needs at least two"
            )
        rare = [_plain(v) for v in counts.index[counts.to_numpy() < 2]]
    columns, wide = [], []
    for name in df.columns:
        kind = _infer_kind(str(name), df[name], max_code_levels)
        if name == target and kind not in ("categorical", "constant"):
            if df[name].nunique(dropna=True) <= 50:
                kind = "categorical"
            elif kind == "identifier":
                raise SchemaError(f"target column {target!r} looks like an identifier")
        if (
            kind == "categorical"
            and name != target
            and _is_text(df[name])
            and df[name].nunique(dropna=True) > max_categories
        ):
            kind = "identifier"
            wide.append(str(name))
        columns.append(
            ColumnSpec(
                name=str(name),
                kind=kind,
                dtype=str(df[name].dtype),
                missing=bool(df[name].isna().any()),
            )
        )
    schema = Schema(columns, target)
    if kinds:
        schema = schema.override(kinds)
    keys = [n for n in schema.identifiers if n not in wide]
    if warn and keys:
        warnings.warn(
            "identifier columns excluded from learning (synthetic rows get fresh "
            f"keys): {keys}",
            UserWarning,
            stacklevel=2,
        )
    if warn and wide:
        warnings.warn(
            f"text columns with more than {max_categories} distinct values are not "
            f"learned (too many categories; synthetic rows get fresh keys): {wide}",
            UserWarning,
            stacklevel=2,
        )
    if warn and rare:
        warnings.warn(
            f"target {target!r} has classes of a single row: {rare[:10]}; they "
            "cannot be stratified, so each lands in the training, reference or "
            "holdout part at random",
            UserWarning,
            stacklevel=2,
        )
    return schema


def check_learnable(df: pd.DataFrame, schema: Schema) -> None:
    """Reject a table that does not match ``schema`` or is too short to learn.

    Raises:
      SchemaError: ``df`` lacks a column of the schema or has one it does not
        list, or ``len(df)`` is at most the number of learned columns (neither
        identifier nor constant).
    """
    schema.check_frame(df)
    learned = [c for c in schema.columns if c.kind not in ("identifier", "constant")]
    if len(df) <= len(learned):
        raise SchemaError(
            f"the table has {len(df)} rows and {len(learned)} columns to learn; a "
            "synthesizer needs more rows than columns"
        )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _infer_kind(name: str, series: pd.Series, max_code_levels: int) -> str:
    values = series.dropna()
    n_distinct = values.nunique()
    if n_distinct == 1 and not series.isna().any():
        return "constant"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_bool_dtype(series) or _all_bool(values):
        return "categorical"
    distinct_share = n_distinct / max(len(values), 1)
    numeric = pd.api.types.is_numeric_dtype(series)
    if not numeric and _is_text(series):
        _reject_numbers_as_text(name, values)
        _reject_text_dates(name, values)
    integral = numeric and _integral(values)
    if (integral or not numeric) and _ID_NAME.search(name) and distinct_share >= 0.5:
        return "identifier"
    if (integral or not numeric) and len(values) >= 20 and distinct_share >= 0.95:
        return "identifier"
    if integral and len(values) >= 20 and distinct_share >= 0.98:
        ordered = np.sort(values.to_numpy(dtype=np.float64))
        if np.all(np.diff(ordered) == 1):
            return "identifier"
    if not numeric:
        if _looks_like_dates(values):
            return "datetime"
        return "categorical"
    if integral:
        return "categorical" if n_distinct <= max_code_levels else "integer"
    return "continuous"


def _reject_numbers_as_text(name: str, values: pd.Series) -> None:
    """Raise if a text column is numbers (more than codes) but for a few words.

    A measurement column with one stray entry (``"<5"``, ``"see note"``) is read
    as text; learned as text it would be an identifier or a category per number,
    and its values would be lost. (``NA``, ``n/a`` and empty cells are missing
    values already.)
    """
    counts = values.value_counts()
    parsed = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce")
    is_number = parsed.notna().to_numpy()
    if is_number.all() or is_number.sum() <= MAX_CODE_LEVELS:
        return
    if counts.to_numpy()[is_number].sum() < 0.9 * counts.sum():
        return
    words = [str(v) for v in counts.index[~is_number]]
    raise SchemaError(
        f"column {name!r} holds numbers stored as text, but {len(words)} value(s) "
        f"are not numbers: {words[:5]}; replace them with numbers or leave them "
        "empty"
    )


_ISO_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")
_DATE_LIKE = re.compile(
    r"^\s*(\d{4}([-/.])\d{1,2}\2\d{1,2}|\d{1,2}([-/.])\d{1,2}\3(\d{4}|\d{2}))"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$"
)


def _reject_text_dates(name: str, values: pd.Series) -> None:
    """Raise if every value reads as a date but not all as an ISO 8601 date.

    ``03/04/2020`` is the 3rd of April or the 4th of March depending on who
    wrote it, and a column mixing two formats cannot be read one way: both are
    errors, never a guess.
    """
    distinct = [str(v) for v in pd.unique(values)[:1000]]
    if not distinct or not all(_DATE_LIKE.match(v) for v in distinct):
        return
    iso = [v for v in distinct if _ISO_DATE.match(v)]
    other = [v for v in distinct if not _ISO_DATE.match(v)]
    if not other:
        return
    if iso:
        raise SchemaError(
            f"column {name!r} mixes date formats ({iso[0]!r}, {other[0]!r}); "
            "write every date as YYYY-MM-DD"
        )
    raise SchemaError(
        f"column {name!r} holds dates as text in a non-ISO format ({other[0]!r}: "
        "day or month first?); write them as YYYY-MM-DD"
    )


def _all_bool(values: pd.Series) -> bool:
    if not pd.api.types.is_object_dtype(values):
        return False
    return bool(len(values)) and all(
        isinstance(v, (bool, np.bool_)) for v in values.iloc[:1000]
    )


def _integral(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values):
        return True
    array = values.to_numpy(dtype=np.float64)
    return bool(np.all(np.floor(array) == array))


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.iloc[:200].astype(str)
    if not sample.str.contains(r"^\d{4}-\d{2}-\d{2}", regex=True).all():
        return False
    try:
        pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True
