"""The Parquet IO manager on S3, against moto's server on loopback, through s3fs."""

import io
from collections.abc import Callable
from typing import Any

import boto3
import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import BotoCoreError
from upath import UPath

from dagster_iwatch.errors import ConfigError
from dagster_iwatch.io_manager import IWatchParquetIOManager, read_parquet, write_parquet_atomic


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def object_bytes(endpoint: str, bucket: str, key: str) -> bytes:
    body: bytes = s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_round_trip_and_uri(bucket: str, moto_endpoint: str, s3_options: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}
    table = pa.table(
        {"n": [1, None, 3], "s": ["a", "b", None]},
        schema=pa.schema([("n", pa.int64()), ("s", pa.string())], metadata={"iwatch.query_id": "7"}),
    )

    @dg.asset(key_prefix="iwatch")
    def result() -> pa.Table:
        return table

    @dg.asset(ins={"result": dg.AssetIn(key=["iwatch", "result"])})
    def reader(result: pa.Table) -> None:
        seen["table"] = result

    outcome = dg.materialize(
        [result, reader],
        resources={"io_manager": IWatchParquetIOManager(base_path=f"s3://{bucket}/prefix", storage_options=s3_options)},
    )
    assert outcome.success
    assert keys(moto_endpoint, bucket) == ["prefix/iwatch/result.parquet"]
    stored = pq.read_table(io.BytesIO(object_bytes(moto_endpoint, bucket, "prefix/iwatch/result.parquet")))
    assert stored.equals(table, check_metadata=True)
    assert seen["table"].equals(table, check_metadata=True)
    [materialization] = outcome.asset_materializations_for_node("iwatch__result")
    assert materialization.metadata["dagster/uri"].value == f"s3://{bucket}/prefix/iwatch/result.parquet"


def test_partitions_and_concatenation(bucket: str, moto_endpoint: str, s3_options: dict[str, Any]) -> None:
    days = dg.DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-03-03")
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=days)
    def daily(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"day": [context.partition_key]})

    @dg.asset
    def combined(daily: pa.Table) -> None:
        seen["table"] = daily

    manager = IWatchParquetIOManager(base_path=f"s3://{bucket}/p", storage_options=s3_options)
    for day in ["2024-03-02", "2024-03-01"]:
        assert dg.materialize([daily], partition_key=day, resources={"io_manager": manager}).success
    assert keys(moto_endpoint, bucket) == [
        "p/daily.partitions/2024-03-01.parquet",
        "p/daily.partitions/2024-03-02.parquet",
    ]

    outcome = dg.materialize([daily, combined], selection=[combined.key], resources={"io_manager": manager})
    assert outcome.success
    assert seen["table"].column("day").to_pylist() == ["2024-03-01", "2024-03-02"]


def test_credentials_from_env_vars_stay_out_of_events(
    bucket: str, moto_endpoint: str, s3_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    monkeypatch.setenv("IWATCH_TEST_S3_SECRET", secret)

    @dg.asset
    def guarded() -> pa.Table:
        return pa.table({"a": [1]})

    manager = IWatchParquetIOManager(
        base_path=f"s3://{bucket}/guarded",
        storage_options={**s3_options, "secret": dg.EnvVar("IWATCH_TEST_S3_SECRET")},
    )
    outcome = dg.materialize([guarded], resources={"io_manager": manager})
    assert outcome.success
    assert keys(moto_endpoint, bucket) == ["guarded/guarded.parquet"]
    for event in outcome.all_events:
        assert secret not in str(event)
    assert secret not in repr(manager.build()._base_path)
    literal = IWatchParquetIOManager(base_path=f"s3://{bucket}/x", storage_options={"secret": secret})
    assert secret not in repr(literal)
    assert secret not in str(literal)


def test_missing_env_var_is_a_config_error(bucket: str, moto_endpoint: str) -> None:
    manager = IWatchParquetIOManager(
        base_path=f"s3://{bucket}/x", storage_options={"secret": dg.EnvVar("IWATCH_TEST_UNSET_VARIABLE")}
    )
    with pytest.raises(ConfigError, match="IWATCH_TEST_UNSET_VARIABLE"):
        manager.build()


def test_failed_upload_leaves_previous_object(
    bucket: str, moto_endpoint: str, cutting_proxy: Any, s3_options_for: Callable[[str], dict[str, Any]]
) -> None:
    options = s3_options_for(f"http://127.0.0.1:{cutting_proxy.port}")
    path = UPath(f"s3://{bucket}/atomic/asset.parquet", **options)
    old = pa.table({"v": [1, 2, 3]})
    write_parquet_atomic(old, path)
    before = object_bytes(moto_endpoint, bucket, "atomic/asset.parquet")

    rng = np.random.default_rng(3)
    new = pa.table({"v": rng.integers(0, 2**62, 100_000)})
    cutting_proxy.armed.set()
    with pytest.raises((OSError, BotoCoreError)):
        write_parquet_atomic(new, path, compression="none")
    cutting_proxy.armed.clear()

    assert cutting_proxy.cuts >= 1
    assert object_bytes(moto_endpoint, bucket, "atomic/asset.parquet") == before
    assert keys(moto_endpoint, bucket) == ["atomic/asset.parquet"]
    assert read_parquet(path).equals(old)

    write_parquet_atomic(new, path, compression="none")
    assert read_parquet(path).equals(new)


def test_colliding_keys_get_objects_of_their_own(bucket: str, moto_endpoint: str, s3_options: dict[str, Any]) -> None:
    partitions = ["b", "a/b", "a//b", "a/./b", "..", "%2E%2E", ".", "/abs", "ETH", "eth"]
    seen: dict[str, Any] = {}

    @dg.asset(key=["q"], partitions_def=dg.StaticPartitionsDefinition(partitions))
    def q(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"who": [f"q[{context.partition_key}]"]})

    @dg.asset(key=["q", "b"])
    def q_b() -> pa.Table:
        return pa.table({"who": ["q/b"]})

    @dg.asset(key=["..", "..", "escape"])
    def escape() -> pa.Table:
        return pa.table({"who": ["../../escape"]})

    @dg.asset(ins={"q": dg.AssetIn(key=["q"])})
    def reader(q: dict[str, pa.Table]) -> None:
        seen.update(q)

    manager = IWatchParquetIOManager(base_path=f"s3://{bucket}/base", storage_options=s3_options)
    for partition in partitions:
        assert dg.materialize([q], partition_key=partition, resources={"io_manager": manager}).success
    assert dg.materialize([q_b, escape], resources={"io_manager": manager}).success
    assert dg.materialize([q, reader], selection=[reader.key], resources={"io_manager": manager}).success

    stored = keys(moto_endpoint, bucket)
    assert len(stored) == len(partitions) + 2
    assert all(key.startswith("base/") for key in stored)
    assert "base/q/b.parquet" in stored
    assert "base/%2e%2e/%2e%2e/escape.parquet" in stored
    assert {key: table.column("who").to_pylist() for key, table in seen.items()} == {
        key: [f"q[{key}]"] for key in partitions
    }
