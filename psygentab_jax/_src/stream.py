"""Writing a stream of frames to one CSV or Parquet file, complete or not at all.

The frames arrive from a generator (the sampler decodes chunk ``i`` while the
device draws chunk ``i + 1``); a writer thread encodes and writes them, with at
most ``depth`` frames waiting between the two, so memory stays bounded whatever
the number of rows. Everything goes to a temporary file beside the destination
(:func:`psygentab_jax._src.io.atomic_path`), renamed into place once the last row
is written and removed on any error or interrupt.

Parquet row groups hold exactly ``row_group_rows`` rows (the last one fewer),
whatever the size of the frames, so the same rows give the same file bytes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from psygentab_jax._src import io
from psygentab_jax._src.schema import SchemaError

PARQUET_SUFFIXES = (".parquet", ".pq")
ROW_GROUP_ROWS = 262_144
_DONE = object()


def check_suffix(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` by the file's suffix.

    Raises:
      SchemaError: another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise SchemaError(f"{str(path)!r}: output must end in .csv or .parquet")


def write_frames(
    path: str | Path,
    frames: Iterable[pd.DataFrame],
    *,
    empty: pd.DataFrame,
    progress: Callable[[int], None] | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
    depth: int = 2,
) -> int:
    """Write ``frames`` one after another to ``path`` (CSV or Parquet by suffix).

    Args:
      path: the destination; it appears only once every frame is written.
      frames: frames with the same columns.
      empty: a zero-row frame of those columns, written when ``frames`` is empty.
      progress: ``progress(rows)`` after each frame is handed to the writer.
      row_group_rows: rows per Parquet row group.
      depth: frames that may wait for the writer thread.

    Returns:
      The number of rows written.

    Raises:
      SchemaError: an unknown suffix. Any error of ``frames``, ``progress`` or the
      writer propagates, with no file (and no temporary file) left behind.
    """
    kind = check_suffix(path)
    if row_group_rows < 1:
        raise ValueError("row_group_rows must be positive")
    with io.atomic_path(path) as temporary:
        sink = (
            _ParquetSink(temporary, row_group_rows)
            if kind == "parquet"
            else _CsvSink(temporary)
        )
        writer = _Writer(sink, depth)
        rows = 0
        try:
            for frame in frames:
                writer.put(frame)
                rows += len(frame)
                if progress is not None:
                    progress(rows)
            if rows == 0:
                writer.put(empty)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    return rows


class _Writer:
    """A thread that hands frames to a sink, and the queue that feeds it."""

    def __init__(self, sink, depth: int):
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.failure: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="psygentab-writer")
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                try:
                    item = self.queue.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _DONE:
                    self.sink.close()
                    return
                self.sink.write(item)
        except BaseException as err:  # handed to the main thread
            self.failure = err
        finally:
            self.sink.release()

    def _raise_failure(self):
        if self.failure is not None:
            raise self.failure

    def put(self, item) -> None:
        """Queue ``item``, waiting while the queue is full; re-raise a failure."""
        while True:
            self._raise_failure()
            if not self.thread.is_alive():
                raise RuntimeError("the writer thread stopped early")
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Write what is queued, close the file, and re-raise a failure."""
        self.put(_DONE)
        self.thread.join()
        self._raise_failure()

    def abort(self) -> None:
        """Stop without writing what is queued, and release the file."""
        self.stop.set()
        self.thread.join()


class _ParquetSink:
    """Arrow tables appended to one Parquet file in fixed-size row groups.

    The file's schema is the first frame's; later frames are cast to it (a
    column may come out as ``Int64`` in one chunk and ``int64`` in another).
    """

    def __init__(self, path: Path, row_group_rows: int):
        self.path = path
        self.row_group_rows = row_group_rows
        self.writer = None
        self.schema = None
        self.pending: list = []
        self.pending_rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, self.schema)
        elif not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self.pending)
        head, rest = table.slice(0, rows), table.slice(rows)
        self.writer.write_table(head.combine_chunks(), row_group_size=rows)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._flush(self.pending_rows)
        self.writer.close()
        self.writer = None

    def release(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _CsvSink:
    """Frames appended to one CSV file, the header written once."""

    def __init__(self, path: Path):
        self.handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.handle, index=False, header=self.header)
        self.header = False

    def close(self) -> None:
        self.handle.close()

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.close()
