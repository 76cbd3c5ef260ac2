"""What a query asset's step does: run the query (for its partition, or each partition of a range) and yield tables.

A run over a partition range (a backfill under a single-run or multi-run ``BackfillPolicy``) queries each partition
on a client of its own, ``max_concurrency`` at a time, and yields one ``{partition_key: table}`` output, which the
Parquet IO manager stores as one file per partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_iwatch import checks as asset_checks
from dagster_iwatch._factory import DEFAULT_IO_MANAGER_KEY, each_partition, versioned_output
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import (
    APIError,
    IWatchError,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
    TransportError,
)
from dagster_iwatch.io_manager import ParquetUPathIOManager
from dagster_iwatch.metadata import (
    BatchFingerprint,
    data_version,
    file_metadata,
    materialization_metadata,
    range_metadata,
    with_file_metadata,
)
from dagster_iwatch.parquet_files import StagedParquet, discard_staged
from dagster_iwatch.partitions import partition_parameters, range_parameter, split_by_window
from dagster_iwatch.resource import IWatchResource
from dagster_iwatch.types import Query, QueryResult

if TYPE_CHECKING:
    from dagster_iwatch.assets import IWatchQuerySpec


def materialize(
    context: dg.AssetExecutionContext,
    resource: IWatchResource,
    key: dg.AssetKey,
    output_name: str,
    *,
    spec: IWatchQuerySpec,
) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
    """What a query asset's step yields: its table (or one per partition of the run's range) and its checks."""
    previous_schema = asset_checks.latest_schema(context, key) if "schema_unchanged" in spec.checks else None
    staging = _parquet_io_manager(context, spec)
    # A staged file is the IO manager's once yielded: it moves it into place (and one it could not take is
    # removed with its writer's other temporary files, see dagster_iwatch.parquet_files).
    if spec.partitions_def is not None and context.has_partition_key_range:
        by_partition = _materialize_range(context, resource, spec, staging)
        stored = list(by_partition.values())
        yield dg.Output(
            {k: v.value for k, v in by_partition.items()},
            output_name,
            metadata=range_metadata({k: v.metadata for k, v in by_partition.items()}),
        )
    else:
        one = _store(context, resource, spec, None, None, staging)
        stored = [one]
        yield versioned_output(one.value, output_name, one.metadata, one.version)
    # Over a range, a check holds when it holds for every partition: the fewest rows, the oldest result.
    ages = [s.result.retrieved_at for s in stored if s.result.retrieved_at is not None]
    yield from asset_checks.evaluate(
        key,
        spec.checks,
        row_count=min(s.result.row_count for s in stored),
        schema=stored[-1].metadata["dagster/column_schema"],
        previous_schema=previous_schema,
        retrieved_at=min(ages) if len(ages) == len(stored) else None,
        max_result_age=spec.max_result_age,
    )


@dataclass(frozen=True)
class _Stored:
    """One result ready for the IO manager: the value to store, its metadata and its data version."""

    value: pa.Table | StagedParquet
    metadata: dict[str, Any]
    result: QueryResult
    version: dg.DataVersion | None


def _parquet_io_manager(context: dg.AssetExecutionContext, spec: IWatchQuerySpec) -> ParquetUPathIOManager | None:
    """The asset's IO manager when it is ours, which takes a streamed file in place of a table."""
    if spec.mode == "cached":
        return None
    manager = getattr(context.resources, spec.io_manager_key or DEFAULT_IO_MANAGER_KEY, None)
    return manager if isinstance(manager, ParquetUPathIOManager) else None


def _store(
    context: dg.AssetExecutionContext,
    resource: IWatchResource,
    spec: IWatchQuerySpec,
    partition: str | None,
    query: Query | None,
    staging: ParquetUPathIOManager | None,
) -> _Stored:
    """One partition's (or the run's) result: streamed to a staged file for our IO manager, else a table."""
    if staging is None:
        query, query_url, result = _fetch(context, resource, spec, partition, query, None)
        table = with_file_metadata(result.to_arrow(), result, spec.query_id)
        metadata = materialization_metadata(
            query_id=spec.query_id, query=query, query_url=query_url, result=result, table=table, mode=spec.mode
        )
        return _Stored(table, metadata, result, data_version(table))
    path = staging.new_staging_path()
    fingerprint = BatchFingerprint()
    try:

        def write(client: IWatchClient, values: dict[str, Any], query: Query) -> QueryResult:
            return client.execute_to_parquet(
                spec.query_id,
                path,
                values,
                max_age=spec.max_age,
                query=query,
                compression=staging.compression,
                compression_level=staging.compression_level,
                row_group_size=staging.row_group_size,
                file_metadata=lambda result: file_metadata(result, spec.query_id),
                observer=fingerprint,
            )

        query, query_url, result = _fetch(context, resource, spec, partition, query, write)
        schema = pq.read_schema(path)
        metadata = materialization_metadata(
            query_id=spec.query_id,
            query=query,
            query_url=query_url,
            result=result,
            table=fingerprint.first_rows(schema),
            mode=spec.mode,
            rows=result.row_count,
        )
        return _Stored(StagedParquet(path, result.row_count), metadata, result, fingerprint.data_version(schema))
    except BaseException:
        discard_staged(path)
        raise


def _materialize_range(
    context: dg.AssetExecutionContext,
    resource: IWatchResource,
    spec: IWatchQuerySpec,
    staging: ParquetUPathIOManager | None,
) -> dict[str, _Stored]:
    """Each partition of the run's range, queried ``spec.max_concurrency`` at a time."""
    query = _details(resource, spec)
    if spec.range_query_column is not None:
        return _one_query_over_range(context, resource, spec, query)
    keys = list(context.partition_keys)
    context.log.info(f"Querying {len(keys)} partitions, {spec.max_concurrency} at a time")
    done: list[_Stored] = []

    def one(partition: str) -> _Stored:
        stored = _store(context, resource, spec, partition, query, staging)
        done.append(stored)
        return stored

    try:
        return each_partition(keys, one, max_concurrency=spec.max_concurrency, name=f"iwatch_query_{spec.query_id}")
    except BaseException:
        for stored in done:
            if isinstance(stored.value, StagedParquet):
                discard_staged(stored.value.path)
        raise


def _one_query_over_range(
    context: dg.AssetExecutionContext, resource: IWatchResource, spec: IWatchQuerySpec, query: Query
) -> dict[str, _Stored]:
    """One query over the run's whole range, its rows split into the partitions by ``spec.range_query_column``."""
    assert isinstance(spec.partitions_def, dg.TimeWindowPartitionsDefinition)  # checked by the spec
    assert isinstance(spec.partition_parameter, str)
    assert spec.range_query_column is not None
    windows = {k: spec.partitions_def.time_window_for_partition_key(k) for k in context.partition_keys}
    start, end = min(w.start for w in windows.values()), max(w.end for w in windows.values())
    try:
        with resource.get_client() as client:
            query_url = client.query_url(spec.query_id)
            values = {
                **spec.parameters,
                **range_parameter(query, spec.partition_parameter, start, end, spec.range_end),
            }
            result = client.execute(spec.query_id, values, max_age=spec.max_age, query=query)
        table = with_file_metadata(result.to_arrow(), result, spec.query_id)
        tables, outside = split_by_window(table, spec.range_query_column, windows)
    except IWatchError as error:
        raise _failure(error, spec.query_id, None) from error
    if outside:
        context.log.warning(f"{outside} rows of the range fall in no partition of it and are not stored")
    return {
        k: _Stored(
            t,
            materialization_metadata(
                query_id=spec.query_id, query=query, query_url=query_url, result=result, table=t, mode=spec.mode
            ),
            result,
            None,
        )
        for k, t in tables.items()
    }


def _details(resource: IWatchResource, spec: IWatchQuerySpec) -> Query:
    try:
        with resource.get_client() as client:
            return client.get_query(spec.query_id)
    except IWatchError as error:
        raise _failure(error, spec.query_id, None) from error


def _fetch(
    context: dg.AssetExecutionContext,
    resource: IWatchResource,
    spec: IWatchQuerySpec,
    partition: str | None,
    query: Query | None,
    write: Callable[[IWatchClient, dict[str, Any], Query], QueryResult] | None,
) -> tuple[Query, str, QueryResult]:
    """The query's details and its result for one partition (or the run's), on a client of its own.

    ``write(client, values, query)``, when given, runs the query in place of ``client.execute``.
    """
    try:
        client = resource.get_client()
    except IWatchError as error:
        raise _failure(error, spec.query_id, None) from error
    with client:
        query_url = client.query_url(spec.query_id)
        try:
            if query is None:
                query = client.get_query(spec.query_id)
            if spec.mode == "cached":
                return query, query_url, _cached_result(client, query)
            values = dict(spec.parameters)
            if spec.partition_parameter is not None:
                values.update(partition_parameters(context, query, spec.partition_parameter, spec.range_end, partition))
            if write is not None:
                return query, query_url, write(client, values, query)
            return query, query_url, client.execute(spec.query_id, values, max_age=spec.max_age, query=query)
        except IWatchError as error:
            raise _failure(error, spec.query_id, query_url) from error


#: Why mode="cached" does not suit a query that declares parameters.
CACHED_WITH_PARAMETERS = (
    "Inverse Watch (like Redash) keeps a latest result only for a run with the parameters' saved defaults, and "
    "Redash v10 none at all; use mode='execute' with max_age to reuse a recent result of the values you need"
)


def _cached_result(client: IWatchClient, query: Query) -> QueryResult:
    try:
        return client.get_cached_result(query.id)
    except NotFoundError as error:
        if not query.parameters:
            raise
        failure = NotFoundError(error.status, error.method, error.path, error.server_message)
        failure.args = (f"query {query.id} has no cached result for its parameters: {CACHED_WITH_PARAMETERS}",)
    raise failure


def _failure(error: IWatchError, query_id: int, query_url: str | None) -> dg.Failure:
    metadata: dict[str, Any] = {"iwatch/query_id": query_id}
    if query_url:
        metadata["iwatch/query_url"] = dg.MetadataValue.url(query_url)
    return iwatch_failure(error, metadata)


def iwatch_failure(error: IWatchError, metadata: Mapping[str, Any], subject: str | None = None) -> dg.Failure:
    """The Dagster failure for an Inverse Watch error, raised at an asset's boundary.

    Args:
        error: The library's error.
        metadata: What the asset knows (which query or dashboard); the job id and server message are added.
        subject: What failed, when the error's own message does not name it (it starts the description).

    Returns:
        A ``dagster.Failure`` that allows a retry only for passing troubles (transport errors, rate limits,
        job timeouts, server errors).
    """
    metadata = dict(metadata)
    job_id = getattr(error, "job_id", None)
    if job_id:
        metadata["iwatch/job_id"] = job_id
    server_message = getattr(error, "server_error", None) or getattr(error, "server_message", None)
    if server_message:
        metadata["iwatch/server_message"] = server_message
    # Only passing troubles are worth a retry: a failed query or a bad parameter gives the same answer again.
    retryable = isinstance(error, TransportError | RateLimitError | JobTimeoutError) or (
        isinstance(error, APIError) and error.status >= 500
    )
    description = f"{type(error).__name__}: {error}"
    if subject:
        description = f"{subject}: {description}"
    return dg.Failure(description=description, metadata=metadata, allow_retries=retryable)
