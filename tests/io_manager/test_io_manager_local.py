"""The Parquet IO manager on a local folder, driven through real Dagster runs."""

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagster_iwatch.errors import ConfigError
from dagster_iwatch.io_manager import (
    IWatchParquetIOManager,
    MissingParquetError,
    UnsupportedOutputError,
    display_uri,
    read_parquet,
    write_parquet_atomic,
)

UTC = dt.UTC


def typed_table() -> pa.Table:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), metadata={"iwatch.type": "integer"}),
            pa.field("price", pa.float64(), metadata={"iwatch.type": "float"}),
            pa.field("ok", pa.bool_()),
            pa.field("name", pa.string(), metadata={"iwatch.friendly_name": "Name"}),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("day", pa.date32()),
        ],
        metadata={"iwatch.query_id": "42", "iwatch.parameters": '{"n": 1}'},
    )
    return pa.table(
        {
            "id": [1, None, 2**62],
            "price": [1.5, None, -0.25],
            "ok": [True, None, False],
            "name": ["a", None, "ü"],
            "at": [dt.datetime(2024, 1, 1, 12, 30, 0, 123456, tzinfo=UTC), None, dt.datetime(1970, 1, 1, tzinfo=UTC)],
            "day": [dt.date(2024, 2, 29), None, dt.date(1999, 12, 31)],
        },
        schema=schema,
    )


def step_error_chain(result: dg.ExecuteInProcessResult) -> list[Any]:
    """The one step failure's error and its cause."""
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error
    assert error is not None
    return [error, *([error.cause] if error.cause else [])]


def run(
    assets: list[Any], base: Path | str, partition_key: str | None = None, **config: Any
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base), **config)},
        partition_key=partition_key,
    )


def test_table_round_trip_keeps_values_types_and_metadata(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.asset(key_prefix=["iwatch", "q"])
    def source() -> pa.Table:
        return typed_table()

    @dg.asset(ins={"source": dg.AssetIn(key=["iwatch", "q", "source"])})
    def as_table(source: pa.Table) -> None:
        seen["table"] = source

    result = run([source, as_table], base_dir)
    assert result.success
    path = base_dir / "iwatch" / "q" / "source.parquet"
    assert path.is_file()

    loaded = seen["table"]
    assert isinstance(loaded, pa.Table)
    assert loaded.equals(typed_table(), check_metadata=True)

    schema = pq.read_schema(path)
    assert schema.metadata[b"iwatch.query_id"] == b"42"
    assert schema.metadata[b"iwatch.parameters"] == b'{"n": 1}'
    assert schema.field("id").metadata == {b"iwatch.type": b"integer"}
    assert schema.field("name").metadata == {b"iwatch.friendly_name": b"Name"}
    assert pq.read_metadata(path).metadata[b"iwatch.query_id"] == b"42"


def test_default_input_is_a_nullable_dataframe(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.asset
    def source() -> pa.Table:
        return typed_table()

    @dg.asset
    def downstream(source: pd.DataFrame) -> None:
        seen["df"] = source

    @dg.asset
    def unannotated(source) -> None:  # type: ignore[no-untyped-def]
        seen["plain"] = source

    assert run([source, downstream, unannotated], base_dir).success
    frame = seen["df"]
    assert isinstance(frame, pd.DataFrame)
    assert isinstance(seen["plain"], pd.DataFrame)
    assert str(frame["id"].dtype) == "Int64"
    assert str(frame["price"].dtype) == "Float64"
    assert str(frame["ok"].dtype) == "boolean"
    assert frame["id"].tolist()[0] == 1
    assert frame["id"].isna().tolist() == [False, True, False]
    assert frame["id"].iloc[2] == 2**62
    assert frame["name"].iloc[2] == "ü"
    assert frame["at"].iloc[0] == pd.Timestamp("2024-01-01 12:30:00.123456", tz="UTC")
    assert pd.isna(frame["at"].iloc[1])
    assert frame["day"].iloc[0] == dt.date(2024, 2, 29)
    assert list(frame.index) == [0, 1, 2]


def test_dataframe_output_is_stored_without_index(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"x": [3, 4], "y": ["a", "b"]}, index=[10, 11])

    @dg.asset
    def reader(frame: pa.Table) -> None:
        seen["table"] = frame

    assert run([frame, reader], base_dir).success
    table = seen["table"]
    assert table.column_names == ["x", "y"]
    assert table.column("x").to_pylist() == [3, 4]
    assert table.column("y").to_pylist() == ["a", "b"]


def test_nullable_dataframe_round_trip(base_dir: Path) -> None:
    seen: dict[str, Any] = {}
    original = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "s": pd.array(["x", None, "z"], dtype="string[pyarrow]"),
            "t": pd.to_datetime(["2024-01-01T00:00:00Z", None, "2024-01-03T00:00:00Z"], utc=True).as_unit("us"),
        }
    )

    @dg.asset
    def frame() -> pd.DataFrame:
        return original

    @dg.asset
    def reader(frame: pd.DataFrame) -> None:
        seen["df"] = frame

    assert run([frame, reader], base_dir).success
    loaded = seen["df"]
    assert [str(t) for t in loaded.dtypes] == ["Int64", "boolean", "string", "datetime64[us, UTC]"]
    pd.testing.assert_frame_equal(loaded, original, check_dtype=False)


def test_output_metadata_has_uri_only(base_dir: Path) -> None:
    @dg.asset(key_prefix="pre")
    def thing() -> pa.Table:
        return pa.table({"a": [1]})

    result = run([thing], base_dir)
    [materialization] = result.asset_materializations_for_node("pre__thing")
    uri = materialization.metadata["dagster/uri"].value
    assert uri == str((base_dir / "pre" / "thing.parquet").resolve())
    assert set(materialization.metadata) == {"dagster/uri"}


def test_relative_base_path_resolves_against_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    @dg.asset
    def rel() -> pa.Table:
        return pa.table({"a": [1]})

    result = dg.materialize([rel], resources={"io_manager": IWatchParquetIOManager()})
    assert result.success
    assert (tmp_path / ".iwatch" / "parquet" / "rel.parquet").is_file()


@pytest.mark.parametrize(
    ("codec", "level", "expected"),
    [("zstd", None, "ZSTD"), ("snappy", None, "SNAPPY"), ("zstd", 9, "ZSTD"), ("none", None, "UNCOMPRESSED")],
)
def test_compression_and_row_groups_are_applied(base_dir: Path, codec: str, level: int | None, expected: str) -> None:
    @dg.asset
    def data() -> pa.Table:
        return pa.table({"n": list(range(1000)), "s": [str(i % 7) for i in range(1000)]})

    assert run([data], base_dir, compression=codec, compression_level=level, row_group_size=300).success
    meta = pq.read_metadata(base_dir / "data.parquet")
    assert meta.num_row_groups == 4
    assert meta.num_rows == 1000
    for group in range(meta.num_row_groups):
        for column in range(meta.num_columns):
            assert meta.row_group(group).column(column).compression == expected


def test_default_compression_is_zstd(base_dir: Path) -> None:
    manager = IWatchParquetIOManager(base_path=str(base_dir)).build()
    assert manager.compression == "zstd"


@pytest.mark.parametrize("config", [{"compression": "lzma"}, {"compression": "zip"}, {"row_group_size": 0}])
def test_bad_config_is_refused(base_dir: Path, config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        IWatchParquetIOManager(base_path=str(base_dir), **config).build()


daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")


def test_partitions_are_files_and_downstream_gets_them_concatenated(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=daily)
    def events(context: dg.AssetExecutionContext) -> pa.Table:
        day = context.partition_key
        columns: dict[str, list[Any]] = {"day": [day, day], "n": [1, 2]}
        if day == "2024-01-02":
            # A later partition gained a column: the concatenation must unify schemas.
            columns["extra"] = ["x", "y"]
        return pa.table(columns).replace_schema_metadata({"iwatch.query_id": "9", "iwatch.parameters": day})

    @dg.asset
    def all_events(events: pa.Table) -> None:
        seen["table"] = events

    @dg.asset
    def all_events_df(events: pd.DataFrame) -> None:
        seen["df"] = events

    # Materialize out of order: concatenation must follow partition order, not write order.
    for key in ["2024-01-03", "2024-01-01", "2024-01-02"]:
        written = run([events], base_dir, partition_key=key)
        [materialization] = written.asset_materializations_for_node("events")
        assert materialization.metadata["dagster/uri"].value == str(
            base_dir.resolve() / "events.partitions" / f"{key}.parquet"
        )
    assert sorted(p.name for p in (base_dir / "events.partitions").iterdir()) == [
        "2024-01-01.parquet",
        "2024-01-02.parquet",
        "2024-01-03.parquet",
    ]

    result = dg.materialize(
        [events, all_events, all_events_df],
        selection=[all_events.key, all_events_df.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
    )
    assert result.success
    table = seen["table"]
    assert table.column("day").to_pylist() == ["2024-01-01"] * 2 + ["2024-01-02"] * 2 + ["2024-01-03"] * 2
    assert table.column("extra").to_pylist() == [None, None, "x", "y", None, None]
    assert seen["df"]["day"].tolist() == table.column("day").to_pylist()
    # Only the metadata shared by all partitions describes the combined table.
    assert table.schema.metadata == {b"iwatch.query_id": b"9"}


def test_partitions_with_clashing_types_say_how_to_load_them(base_dir: Path) -> None:
    colors = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=colors)
    def clash(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"v": [1] if context.partition_key == "a" else ["text"]})

    @dg.asset
    def together(clash: pa.Table) -> None:
        pass

    for key in ["a", "b"]:
        assert run([clash], base_dir, partition_key=key).success
    result = dg.materialize(
        [clash, together],
        selection=[together.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
        raise_on_error=False,
    )
    assert not result.success
    messages = " ".join(e.message for e in step_error_chain(result))
    assert "Partitions of asset clash cannot be combined" in messages
    assert "dict[str, pa.Table]" in messages


def test_dict_annotation_gives_one_value_per_partition(base_dir: Path) -> None:
    colors = dg.StaticPartitionsDefinition(["red", "green", "blue"])
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=colors)
    def paint(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"color": [context.partition_key]})

    @dg.asset
    def frames(paint: dict[str, pd.DataFrame]) -> None:
        seen["frames"] = paint

    @dg.asset
    def tables(paint: dict[str, pa.Table]) -> None:
        seen["tables"] = paint

    @dg.asset
    def joined(paint: pa.Table) -> None:
        seen["joined"] = paint

    for color in ["blue", "red", "green"]:
        assert run([paint], base_dir, partition_key=color).success
    result = dg.materialize(
        [paint, frames, tables, joined],
        selection=[frames.key, tables.key, joined.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
    )
    assert result.success
    assert list(seen["frames"]) == ["red", "green", "blue"]
    assert all(isinstance(v, pd.DataFrame) for v in seen["frames"].values())
    assert seen["frames"]["green"]["color"].tolist() == ["green"]
    assert list(seen["tables"]) == ["red", "green", "blue"]
    assert all(isinstance(v, pa.Table) for v in seen["tables"].values())
    # Static partitions concatenate in definition order.
    assert seen["joined"].column("color").to_pylist() == ["red", "green", "blue"]


def test_multi_partitions_nest_one_folder_per_dimension(base_dir: Path) -> None:
    multi = dg.MultiPartitionsDefinition(
        {"day": dg.StaticPartitionsDefinition(["d1", "d2"]), "chain": dg.StaticPartitionsDefinition(["eth"])}
    )
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=multi)
    def prices(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"key": [str(context.partition_key)]})

    @dg.asset(partitions_def=multi)
    def same(context: dg.AssetExecutionContext, prices: pa.Table) -> None:
        seen["one"] = prices

    key = dg.MultiPartitionKey({"day": "d2", "chain": "eth"})
    result = dg.materialize(
        [prices, same],
        partition_key=key,
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
    )
    assert result.success
    assert (base_dir / "prices.partitions" / "eth" / "d2.parquet").is_file()
    assert seen["one"].column("key").to_pylist() == [str(key)]


def test_missing_upstream_names_asset_partition_and_path(base_dir: Path) -> None:
    @dg.asset(partitions_def=daily)
    def events(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"day": [context.partition_key]})

    @dg.asset
    def consumer(events: pa.Table) -> None:
        pass

    assert run([events], base_dir, partition_key="2024-01-01").success
    result = dg.materialize(
        [events, consumer],
        selection=[consumer.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error
    assert error is not None
    text = str(error.cause.message if error.cause else error.message)
    assert "MissingParquetError" in (error.cause.cls_name if error.cause else error.cls_name)
    assert "partition '2024-01-02' of asset events" in text
    assert str(base_dir.resolve() / "events.partitions" / "2024-01-02.parquet") in text
    assert "Materialize it first" in text


def test_missing_partitions_can_be_skipped(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=daily)
    def events(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"day": [context.partition_key]})

    @dg.asset(ins={"events": dg.AssetIn(metadata={"allow_missing_partitions": True})})
    def consumer(events: pa.Table) -> None:
        seen["table"] = events

    assert run([events], base_dir, partition_key="2024-01-03").success
    assert run([events], base_dir, partition_key="2024-01-01").success
    result = dg.materialize(
        [events, consumer],
        selection=[consumer.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
    )
    assert result.success
    assert seen["table"].column("day").to_pylist() == ["2024-01-01", "2024-01-03"]


def test_missing_plain_upstream_says_to_materialize_it(base_dir: Path) -> None:
    @dg.asset(key_prefix="iwatch")
    def never() -> pa.Table:
        return pa.table({"a": [1]})

    @dg.asset(ins={"never": dg.AssetIn(key=["iwatch", "never"])})
    def consumer(never: pa.Table) -> None:
        pass

    result = dg.materialize(
        [never, consumer],
        selection=[consumer.key],
        resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
        raise_on_error=False,
    )
    assert not result.success
    messages = " ".join(e.message for e in step_error_chain(result))
    expected = str(base_dir.resolve() / "iwatch" / "never.parquet")
    assert f"No Parquet file for asset iwatch/never at {expected}. Materialize it first" in messages


def test_missing_file_error_for_plain_asset(tmp_path: Path) -> None:
    error = MissingParquetError("a/b", None, "/x/a/b.parquet")
    assert isinstance(error, FileNotFoundError)
    assert str(error) == (
        "No Parquet file for asset a/b at /x/a/b.parquet. Materialize it first, or check the IO manager's base_path."
    )
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "nothing.parquet")


@pytest.mark.parametrize("value", [None, [1, 2], {"a": [1]}])
def test_outputs_other_than_tables_are_refused(base_dir: Path, value: Any) -> None:
    @dg.asset
    def bad():  # type: ignore[no-untyped-def]
        return value

    result = dg.materialize(
        [bad], resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))}, raise_on_error=False
    )
    assert not result.success
    chain = step_error_chain(result)
    assert any(e.cls_name == UnsupportedOutputError.__name__ for e in chain)
    assert any("pyarrow.Table or a pandas DataFrame" in e.message for e in chain)
    assert not base_dir.exists() or not any(base_dir.rglob("*.parquet"))


def test_dataframe_arrow_cannot_store_is_refused_clearly(base_dir: Path) -> None:
    @dg.asset
    def mixed() -> pd.DataFrame:
        return pd.DataFrame({"v": pd.Series([1, "two", 3.0], dtype=object)})

    result = dg.materialize(
        [mixed], resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))}, raise_on_error=False
    )
    assert not result.success
    messages = " ".join(e.message for e in step_error_chain(result))
    assert "mixed returned a DataFrame that Arrow cannot store" in messages
    assert not base_dir.exists() or not any(base_dir.rglob("*"))


def test_rewrite_replaces_file_and_leaves_no_temp(base_dir: Path) -> None:
    path = base_dir / "t.parquet"
    write_parquet_atomic(pa.table({"v": [1]}), path)
    write_parquet_atomic(pa.table({"v": [2, 3]}), path)
    assert read_parquet(path).column("v").to_pylist() == [2, 3]
    assert [p.name for p in base_dir.iterdir()] == ["t.parquet"]


def test_display_uri_hides_credentials(tmp_path: Path) -> None:
    assert display_uri("s3://bucket/key.parquet") == "s3://bucket/key.parquet"
    assert display_uri("https://user:secret@host/a.parquet") == "https://host/a.parquet"
    assert display_uri(str(tmp_path / "x.parquet")) == str(tmp_path / "x.parquet")


def test_op_outputs_are_stored_by_run_and_step(base_dir: Path) -> None:
    seen: dict[str, Any] = {}

    @dg.op
    def make() -> pa.Table:
        return pa.table({"v": [7]})

    @dg.op
    def check(table: pa.Table) -> None:
        seen["v"] = table.column("v").to_pylist()

    @dg.job(resource_defs={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))})
    def pipeline() -> None:
        check(make())

    result = pipeline.execute_in_process()
    assert result.success
    assert seen["v"] == [7]
    assert (base_dir / f"{result.run_id}.run" / "make" / "result.parquet").is_file()
