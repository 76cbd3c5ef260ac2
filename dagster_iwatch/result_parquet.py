"""A run's result written straight to Parquet: row groups written as the body arrives, no table in memory.

:meth:`IWatchClient.execute_to_parquet <dagster_iwatch.client.IWatchClient.execute_to_parquet>` hands a
:class:`ParquetTarget` to the run; the rows go from the HTTP answer to record batches to row groups
(:func:`dagster_iwatch.ingest.write_result_parquet`), so memory holds a few pieces of the body at a time
whatever the result's size. The file equals the one ``pq.write_table(result.to_arrow())`` writes with the
same key-value metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import pyarrow.parquet as pq

from dagster_iwatch.ingest import BatchObserver, write_result_parquet
from dagster_iwatch.types import QueryResult, WrittenRows

__all__ = ["STREAM_PIECE_BYTES", "STREAM_ROW_GROUP_ROWS", "ParquetTarget"]

#: Text behind one record batch when streaming: small pieces keep memory low; row groups gather several.
STREAM_PIECE_BYTES = 1 << 20
#: Rows per row group when none is configured: a few MB of Arrow data, gathered from the pieces.
STREAM_ROW_GROUP_ROWS = 1 << 16


@dataclass(frozen=True)
class ParquetTarget:
    """Where and how a result's rows are written as Parquet.

    Attributes:
        sink: A seekable binary file, written from its current position.
        where: What the file is, for messages (a path).
        compression: Parquet codec.
        compression_level: Codec level, or ``None`` for the codec's default.
        row_group_size: Rows per row group; :data:`STREAM_ROW_GROUP_ROWS` when ``None``.
        file_metadata: Given the result (its rows not counted yet), key-value metadata to store in the file.
        observer: Told of each batch written, and of a restart (see :class:`~dagster_iwatch.ingest.BatchObserver`).
        piece_bytes: Text behind one record batch.
    """

    sink: IO[bytes]
    where: str
    compression: str = "zstd"
    compression_level: int | None = None
    row_group_size: int | None = None
    file_metadata: Callable[[QueryResult], Mapping[str, str]] | None = None
    observer: BatchObserver | None = None
    piece_bytes: int = STREAM_PIECE_BYTES

    def write_body(
        self,
        chunks: Iterable[bytes],
        refetch: Callable[[], Iterable[bytes]],
        finish: Callable[[Any, int], QueryResult],
    ) -> QueryResult:
        """Write a result body as it arrives; ``finish(envelope, rows)`` makes the result from what was read."""
        written = write_result_parquet(
            chunks,
            self.sink,
            compression=self.compression,
            compression_level=self.compression_level,
            file_metadata=None if self.file_metadata is None else self._entries(finish),
            refetch=refetch,
            piece_bytes=self.piece_bytes,
            row_group_size=self.row_group_size or STREAM_ROW_GROUP_ROWS,
            observer=self.observer,
        )
        return finish(written.envelope, written.rows)

    def _entries(self, finish: Callable[[Any, int], QueryResult]) -> Callable[[dict[str, Any]], Mapping[str, str]]:
        assert self.file_metadata is not None
        describe = self.file_metadata
        return lambda envelope: describe(finish(envelope, 0))

    def restart(self, origin: int) -> None:
        """Drop what was written since ``origin``, to write the result again."""
        self.sink.seek(origin)
        self.sink.truncate()
        if self.observer is not None:
            self.observer.restart()

    def write_result(self, result: QueryResult) -> QueryResult:
        """Write a result already in memory (a cached answer); the returned result keeps no rows."""
        table = result.to_arrow()
        if self.file_metadata is not None:
            entries = {str(k): str(v) for k, v in self.file_metadata(result).items()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **entries})
        options: dict[str, Any] = {"compression": self.compression}
        if self.compression_level is not None:
            options["compression_level"] = self.compression_level
        pq.write_table(table, self.sink, row_group_size=self.row_group_size or STREAM_ROW_GROUP_ROWS, **options)
        if self.observer is not None:
            for batch in table.to_batches():
                self.observer.batch(batch)
        return dataclasses.replace(result, rows=WrittenRows(table.num_rows, self.where), table=None)
