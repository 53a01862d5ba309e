"""Reading tables and writing outputs without ever leaving a half-written file.

Inputs are only read. Every output goes to a temporary file in the destination's
folder and is moved into place with :func:`os.replace` (atomic on POSIX), so a crash
leaves either the previous file or the complete new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from psygentab_jax._src.schema import SchemaError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table, naming the file in any error.

    Raises:
      SchemaError: the file is absent, unreadable, empty, or of an unknown type.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise SchemaError(f"{str(path)!r}: expected a .csv or .parquet file")
    if not path.is_file():
        raise SchemaError(f"{str(path)!r}: no such file")
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SchemaError(f"{str(path)!r} cannot be read: {message}") from None
    if df.shape[1] == 0:
        raise SchemaError(f"{str(path)!r} has no columns")
    if len(df) == 0:
        raise SchemaError(f"{str(path)!r} has a header but no rows")
    return df


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
