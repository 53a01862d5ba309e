"""Reading tables and writing outputs without ever leaving a half-written file.

Inputs are only read. Every output goes to a temporary file in the destination's
folder and is moved into place with :func:`os.replace` (atomic on POSIX), so a crash
leaves either the previous file or the complete new one, never a torn one.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from psygentab_jax._src.schema import SchemaError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, comma-separated) or Parquet table; never modifies it.

    A CSV's structure is checked before pandas parses it, because pandas would
    silently pad a short row, rename a duplicate name (``a``, ``a.1``) or take a
    semicolon-separated file for one column. A byte-order mark is dropped from
    the first name.

    Raises:
      SchemaError: the file is absent, unreadable, empty, not UTF-8, of an unknown
        type, has ragged rows, duplicate or empty column names, another delimiter
        than a comma, or (Parquet) nested column types. The message names the file.
    """
    path = Path(path)
    name = repr(str(path))
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise SchemaError(f"{name}: expected a .csv or .parquet file")
    if path.is_dir():
        raise SchemaError(f"{name} is a folder, not a table file")
    if not path.is_file():
        raise SchemaError(f"{name}: no such file")
    try:
        if suffix == ".csv":
            _check_csv(path, name)
            df = pd.read_csv(path, encoding="utf-8-sig")
        else:
            _check_parquet(path, name)
            df = pd.read_parquet(path)
    except SchemaError:
        raise
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{name} is empty") from None
    except UnicodeDecodeError as err:
        raise SchemaError(
            f"{name} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
            f"position {err.start}); save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, csv.Error, OSError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SchemaError(
            f"{name} cannot be read: {message or type(err).__name__}"
        ) from None
    if df.shape[1] == 0:
        raise SchemaError(f"{name} has no columns")
    if len(df) == 0:
        raise SchemaError(f"{name} has a header but no rows")
    return df


# A one-column header holding one of these is a file split by something else.
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def _check_csv(path: Path, name: str) -> None:
    """Reject a CSV whose header or rows pandas would reinterpret silently."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle)
        header = next((row for row in rows if row), None)
        if header is None:
            raise SchemaError(f"{name} is empty")
        _check_header(header, name)
        for row in rows:
            if row and len(row) != len(header):
                raise SchemaError(
                    f"{name} cannot be read: line {rows.line_num} has {len(row)} "
                    f"fields, the header has {len(header)} (ragged rows)"
                )


def _check_header(header: list[str], name: str) -> None:
    if len(header) == 1:
        found = [label for sep, label in _OTHER_DELIMITERS.items() if sep in header[0]]
        if found:
            raise SchemaError(
                f"{name} reads as one column named {header[0]!r}: it looks "
                f"{found[0]}-separated; psygentab reads comma-separated files"
            )
    unnamed = [i + 1 for i, column in enumerate(header) if not column.strip()]
    if unnamed:
        raise SchemaError(
            f"{name} has columns without a name (positions {unnamed}); a saved row "
            "index? write the file without it"
        )
    counts = collections.Counter(header)
    duplicated = sorted(column for column, count in counts.items() if count > 1)
    if duplicated:
        raise SchemaError(f"{name} has duplicate column names: {duplicated}")


def _check_parquet(path: Path, name: str) -> None:
    """Reject nested column types (lists, structs, maps) and duplicate names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    nested = [f"{f.name!r} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise SchemaError(
            f"{name} has nested columns {', '.join(nested)}; flatten them into "
            "one plain column per value"
        )
    counts = collections.Counter(schema.names)
    duplicated = sorted(column for column, count in counts.items() if count > 1)
    if duplicated:
        raise SchemaError(f"{name} has duplicate column names: {duplicated}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=folder
    )
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp creates 0600; give the file the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path``."""
    with atomic_path(path) as temporary:
        write(temporary)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise SchemaError(f"{str(path)!r}: output must end in .csv or .parquet")
    if suffix == ".csv":
        return write_atomic(path, lambda p: df.to_csv(p, index=False))
    return write_atomic(path, lambda p: df.to_parquet(p, index=False))
