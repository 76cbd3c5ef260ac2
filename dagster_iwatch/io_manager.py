"""Parquet IO manager: one Parquet file per asset (and partition), on a local folder or any fsspec URL.

Where each value goes is :mod:`dagster_iwatch.parquet_paths`; how a file is written atomically and read back
is :mod:`dagster_iwatch.parquet_files`.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from dagster import (
    ConfigurableIOManagerFactory,
    EnvVar,
    InitResourceContext,
    InputContext,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    OutputContext,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    UPathIOManager,
)
from pydantic import Field

from dagster_iwatch.errors import (
    BasePathError,
    ConfigError,
    IWatchError,
    MissingParquetError,
    UnsupportedOutputError,
)
from dagster_iwatch.parquet_files import (
    StagedParquet,
    check_base_path,
    display_uri,
    is_local,
    place_staged,
    read_parquet,
    staging_path,
    write_parquet_atomic,
)
from dagster_iwatch.parquet_paths import asset_relative_path, legacy_asset_relative_path, op_output_relative_path

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath

__all__ = [
    "DEFAULT_BASE_PATH",
    "BasePathError",
    "IWatchParquetIOManager",
    "MissingParquetError",
    "ParquetUPathIOManager",
    "UnsupportedOutputError",
    "display_uri",
    "read_parquet",
    "table_to_pandas",
    "write_parquet_atomic",
]

DEFAULT_BASE_PATH = "./.iwatch/parquet"
"""Where files go when ``base_path`` is not set; relative paths resolve against the working directory."""

Shape = Literal["pandas", "arrow"]
Partition = str | Mapping[str, str]


def table_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert a table to a DataFrame with nullable dtypes, exactly as ``QueryResult.to_pandas()`` does.

    Integers, floats, booleans and strings become pandas' nullable dtypes, timestamps keep their unit
    and time zone, and other types (such as ``date32``) stay Arrow-backed; see :mod:`dagster_iwatch.arrow`.

    Args:
        table: The table to convert.

    Returns:
        The DataFrame, with a default range index.
    """
    from dagster_iwatch.arrow import arrow_to_pandas

    return arrow_to_pandas(table)


def _to_table(obj: object, what: str) -> pa.Table | StagedParquet:
    if isinstance(obj, pa.Table | StagedParquet):
        return obj
    if obj is None:
        raise UnsupportedOutputError(
            f"{what} returned None, so there is nothing to store as Parquet. Return a pyarrow.Table or a "
            "pandas DataFrame, or, if the asset stores its data itself, annotate its return type as None "
            "or return a MaterializeResult."
        )
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        try:
            return pa.Table.from_pandas(obj, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise UnsupportedOutputError(
                f"{what} returned a DataFrame that Arrow cannot store: {error}. Give each column a single type "
                "(for example with DataFrame.astype or convert_dtypes)."
            ) from error
    raise UnsupportedOutputError(
        f"{what} returned a {type(obj).__module__}.{type(obj).__qualname__}; the Parquet IO manager stores "
        "only a pyarrow.Table or a pandas DataFrame."
    )


def _requested(typing_type: Any) -> tuple[bool, Shape]:
    """Whether an input annotation asks for a dict per partition, and which shape each value takes."""
    as_dict = False
    value_type = typing_type
    origin = typing.get_origin(typing_type)
    if typing_type in (dict, Mapping) or origin in (dict, Mapping):
        as_dict = True
        args = typing.get_args(typing_type)
        value_type = args[1] if len(args) == 2 else Any
    return as_dict, ("arrow" if value_type is pa.Table else "pandas")


def _shaped(table: pa.Table, shape: Shape) -> pa.Table | pd.DataFrame:
    return table if shape == "arrow" else table_to_pandas(table)


def _ordered(keys: Sequence[str], partitions_def: Any) -> list[str]:
    # A subset of static partitions comes back as an unordered set; time keys need their window, not their
    # spelling, to sort (for formats such as "%m-%d-%Y").
    if isinstance(partitions_def, StaticPartitionsDefinition):
        rank = {key: index for index, key in enumerate(partitions_def.get_partition_keys())}
        return sorted(keys, key=lambda key: (rank.get(key, len(rank)), key))
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return sorted(keys, key=lambda key: partitions_def.time_window_for_partition_key(key).start)
    return sorted(keys)


class ParquetUPathIOManager(UPathIOManager):
    """The IO manager built by :class:`IWatchParquetIOManager`: Parquet files under a ``UPath``."""

    extension = ".parquet"

    def __init__(
        self,
        base_path: UPath,
        *,
        compression: str = "zstd",
        compression_level: int | None = None,
        row_group_size: int | None = None,
    ) -> None:
        super().__init__(base_path=base_path)
        self.compression = compression
        self.compression_level = compression_level
        self.row_group_size = row_group_size

    def path_for(self, context: InputContext | OutputContext, partition: str | None = None) -> UPath:
        """Where the value of ``context`` (or one partition of it) is stored; see :mod:`dagster_iwatch.parquet_paths`.

        Args:
            context: The output or input.
            partition: A partition key of the asset, or ``None`` for an unpartitioned asset or an op output.
        """
        if context.has_asset_key:
            relative = asset_relative_path(context.asset_key.path, _dimensions(context, partition))
        else:
            relative = op_output_relative_path(context.get_identifier())
        return self._base_path.joinpath(*relative.split("/"))

    def make_directory(self, path: UPath) -> None:
        """Create a local folder; object stores have no folders to create."""
        if is_local(path):
            Path(path.path).mkdir(parents=True, exist_ok=True)

    def new_staging_path(self) -> Path:
        """Where a step can write a Parquet file to hand over as a :class:`~dagster_iwatch.parquet_files.StagedParquet`.

        Query assets stream a large result there, row group by row group, and the file is then moved into
        place (a rename under a local ``base_path``); see :func:`dagster_iwatch.parquet_files.staging_path`.
        """
        return staging_path(self._base_path)

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        """Write a table or DataFrame to ``path`` atomically, or move a staged file there."""
        value = _to_table(obj, _describe(context))
        if isinstance(value, StagedParquet):
            place_staged(value.path, path)
            return
        write_parquet_atomic(
            value,
            path,
            compression=self.compression,
            compression_level=self.compression_level,
            row_group_size=self.row_group_size,
        )

    def load_from_path(self, context: InputContext, path: UPath) -> pa.Table:
        """Read the Parquet file at ``path``."""
        return read_parquet(path)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Store an output as one Parquet file and record its location as ``dagster/uri``.

        Raises:
            UnsupportedOutputError: The output is ``None`` or neither a table nor a DataFrame.
            IWatchError: The output holds several partitions but is not a ``{partition_key: table}`` mapping.
        """
        if isinstance(obj, Mapping) and context.has_asset_partitions:
            # A run over a partition range hands one table per partition: each gets its own file.
            paths = [
                self._write(context, _to_table(obj[k], _describe(context)), k) for k in context.asset_partition_keys
            ]
            context.add_output_metadata({"dagster/uri": MetadataValue.text(display_uri(paths[0].parent))})
            return
        table = _to_table(obj, _describe(context))
        partition: str | None = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise IWatchError(
                    f"{_describe(context)} produced {len(keys)} partitions in one output; the Parquet IO "
                    "manager writes one file per partition. Run the backfill with one run per partition."
                )
            partition = keys[0]
        path = self._write(context, table, partition)
        context.add_output_metadata({"dagster/uri": MetadataValue.text(display_uri(path))})

    def _write(self, context: OutputContext, table: pa.Table | StagedParquet, partition: str | None) -> UPath:
        path = self.path_for(context, partition)
        context.log.debug(f"Writing Parquet to {display_uri(path)}")
        self.make_directory(path.parent)
        self.dump_to_path(context, table, path)
        return path

    def load_input(self, context: InputContext) -> Any:
        """Load an input as a DataFrame, a ``pyarrow.Table``, or a dict of either per partition.

        The input's annotation decides: ``pa.Table`` gives a table, ``dict[str, pa.Table]`` or
        ``dict[str, pd.DataFrame]`` a dict keyed by partition key, anything else a DataFrame (see
        :func:`table_to_pandas`). Several partitions without a dict annotation are concatenated, in
        partition order, into one table or DataFrame; columns missing from some partitions become null.

        Raises:
            MissingParquetError: A file is missing, unless the input's metadata sets
                ``allow_missing_partitions`` (then the missing partitions are skipped).
        """
        as_dict, shape = _requested(context.dagster_type.typing_type)
        if not context.has_asset_key or not context.has_asset_partitions:
            return _shaped(self._read(context, None), shape)

        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions", False))
        tables: dict[str, pa.Table] = {}
        for key in _ordered(list(context.asset_partition_keys), context.asset_partitions_def):
            try:
                tables[key] = self._read(context, key)
            except MissingParquetError:
                if not allow_missing:
                    raise
                context.log.warning(f"Skipping missing partition {key!r} (allow_missing_partitions is set)")
        if as_dict:
            return {key: _shaped(table, shape) for key, table in tables.items()}
        if len(tables) == 1:
            return _shaped(next(iter(tables.values())), shape)
        return _shaped(_concat(context, tables), shape)

    def _read(self, context: InputContext, partition: str | None) -> pa.Table:
        path = self.path_for(context, partition)
        context.log.debug(f"Reading Parquet from {display_uri(path)}")
        try:
            return read_parquet(path)
        except FileNotFoundError as error:
            self._point_to_legacy_file(context, partition, path)
            raise MissingParquetError(_describe(context), partition, display_uri(path)) from error

    def _point_to_legacy_file(self, context: InputContext, partition: str | None, path: UPath) -> None:
        if not context.has_asset_key:
            return
        legacy = self._base_path.joinpath(
            *legacy_asset_relative_path(context.asset_key.path, _dimensions(context, partition)).split("/")
        )
        try:
            found = legacy != path and legacy.is_file()
        except Exception:  # an unusual key may not even form a valid path or object name
            return
        if found:
            context.log.warning(
                f"{display_uri(path)} is missing but {display_uri(legacy)} exists: it may have been written "
                "before keys were escaped. Move it to the new path (see the IO manager's layout in the README)."
            )


def _dimensions(context: InputContext | OutputContext, partition: str | None) -> Partition | None:
    """A partition key as the path mapping takes it: a string, or a dimension-to-key mapping for multi-partitions."""
    if partition is None:
        return None
    if isinstance(partition, MultiPartitionKey):
        return dict(partition.keys_by_dimension)
    partitions_def = context.asset_partitions_def if context.has_asset_partitions else None
    if isinstance(partitions_def, MultiPartitionsDefinition):
        return dict(partitions_def.get_partition_key_from_str(partition).keys_by_dimension)
    return partition


def _concat(context: InputContext, tables: Mapping[str, pa.Table]) -> pa.Table:
    if not tables:
        return pa.table({})
    try:
        combined = pa.concat_tables(list(tables.values()), promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise IWatchError(
            f"Partitions of asset {_describe(context)} cannot be combined into one table: {error}. Annotate the "
            "input as dict[str, pa.Table] (or dict[str, pd.DataFrame]) to receive each partition on its own."
        ) from error
    # Schema metadata describes how each partition was produced (parameters, result id...); the combined
    # table keeps only the entries that every partition shares, so none of them misdescribes the rest.
    schemas = [table.schema.metadata or {} for table in tables.values()]
    common = {key: value for key, value in schemas[0].items() if all(s.get(key) == value for s in schemas[1:])}
    return combined.replace_schema_metadata(common or None)


def _describe(context: InputContext | OutputContext) -> str:
    if context.has_asset_key:
        return context.asset_key.to_user_string()
    return "/".join(context.get_identifier())


def _env_value(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"storage_options refers to environment variable {name}, which is not set")
    return value


def _resolve_env(value: Any) -> Any:
    # Inside a run Dagster hands an Any-typed dict's EnvVar over in its config form {"env": NAME}; outside a
    # run (build()) it is still the EnvVar. Resolve both so credentials never have to be written in config.
    if isinstance(value, EnvVar):
        return _env_value(value.env_var_name)
    if isinstance(value, Mapping):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return _env_value(value["env"])
        return {key: _resolve_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_env(item) for item in value]
    return value


class IWatchParquetIOManager(ConfigurableIOManagerFactory[ParquetUPathIOManager]):
    """Store asset values as Parquet files in a local folder or an object store, with atomic writes.

    Each asset is one file, ``<base_path>/<asset key parts>.parquet``; a partitioned asset has one file
    per partition, ``<base_path>/<asset key parts>.partitions/<partition key>.parquet`` (multi-partition
    keys nest one folder per dimension, in dimension-name order). Every part is escaped so that two keys
    never share a file and nothing leaves ``base_path``; see :mod:`dagster_iwatch.parquet_paths`.
    An asset returns a ``pyarrow.Table`` (its schema and field metadata are kept in the file) or a pandas
    DataFrame. A downstream asset receives a DataFrame with Arrow-backed columns, or a ``pyarrow.Table``
    if its parameter is annotated ``pa.Table``; see :meth:`ParquetUPathIOManager.load_input`.

    The default codec is zstd: on the project's reference result (1M rows, 10 columns) it gives a file
    38% smaller than snappy (50.5 MB against 81.5 MB) for a similar write and read time, and every
    Parquet reader in use today can read it. Choose ``snappy`` for the oldest readers.

    Example:
        .. code-block:: python

            import dagster as dg
            from dagster_iwatch import IWatchParquetIOManager

            defs = dg.Definitions(
                assets=[...],
                resources={
                    "io_manager": IWatchParquetIOManager(
                        base_path="s3://my-bucket/iwatch",
                        storage_options={
                            "key": dg.EnvVar("AWS_ACCESS_KEY_ID"),
                            "secret": dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
                        },
                    )
                },
            )
    """

    base_path: str = Field(
        default=DEFAULT_BASE_PATH,
        description=(
            "Folder or fsspec URL under which the Parquet files are stored, e.g. './data/iwatch' or "
            "'s3://bucket/prefix'. A relative folder is resolved against the working directory."
        ),
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,
        description=(
            "Options for the fsspec filesystem of a URL base_path, e.g. {'endpoint_url': ..., 'key': ..., "
            "'secret': ...} for s3fs. Use dg.EnvVar for secrets; they are never logged or stored in "
            "metadata. Ignored for a local folder."
        ),
    )
    compression: str = Field(
        default="zstd",
        description="Parquet codec: zstd (default, smallest files), snappy, gzip, brotli, lz4 or none.",
    )
    compression_level: int | None = Field(
        default=None, description="Codec level (e.g. 1-22 for zstd); unset uses the codec's default."
    )
    row_group_size: int | None = Field(
        default=None,
        description="Maximum rows per Parquet row group; unset uses pyarrow's default (1,048,576).",
    )

    def create_io_manager(self, context: InitResourceContext) -> ParquetUPathIOManager:
        """Build the IO manager for a run, and check that ``base_path`` can be written to.

        Dagster sets up a step's IO manager before the step runs, so a wrong ``base_path`` fails the step
        before its query is sent.

        Raises:
            ConfigError: The codec is unknown or not available, or a storage option names a missing
                environment variable.
            BasePathError: ``base_path`` cannot be created (a local folder is created when missing), is
                not a folder, or cannot be written to.
        """
        manager = self.build()
        check_base_path(manager._base_path)
        return manager

    def build(self) -> ParquetUPathIOManager:
        """Build the IO manager outside a run, e.g. to read stored assets in a notebook.

        Raises:
            ConfigError: The codec is unknown or not available, or a storage option names a missing
                environment variable.
        """
        from upath import UPath

        compression = self.compression.lower()
        if compression != "none":
            try:
                available = pa.Codec.is_available(compression)
            except ValueError:
                available = False
            if not available:
                raise ConfigError(
                    f"Unknown or unavailable Parquet compression {self.compression!r}; "
                    "use zstd, snappy, gzip, brotli, lz4 or none"
                )
        if self.row_group_size is not None and self.row_group_size < 1:
            raise ConfigError(f"row_group_size must be at least 1, got {self.row_group_size}")

        base = UPath(self.base_path)
        if is_local(base):
            base = UPath(Path(base.path).expanduser().resolve())
        else:
            base = UPath(self.base_path, **_resolve_env(self.storage_options))
        return ParquetUPathIOManager(
            base,
            compression=compression,
            compression_level=self.compression_level,
            row_group_size=self.row_group_size,
        )
