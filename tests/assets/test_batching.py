"""Single-run backfills and grouped query assets, against the local server over HTTP."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from dagster_iwatch import IWatchQuerySpec, build_iwatch_query_asset, build_iwatch_query_assets
from dagster_iwatch.errors import ConfigError

from .conftest import Runner

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
DAYS = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def posts(runner: Runner, query_id: int) -> int:
    return sum(
        1
        for method, path in runner.server.requests_seen
        if (method, path) == ("POST", f"/api/queries/{query_id}/results")
    )


def test_single_run_backfill_writes_each_partition_to_its_own_file(runner: Runner) -> None:
    asset = build_iwatch_query_asset(
        5, partitions_def=DAILY, partition_parameter="period", backfill_policy=dg.BackfillPolicy.single_run()
    )
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()

    result = runner.materialize([asset], tags=range_tags(DAYS[0], DAYS[-1]))

    assert posts(runner, 5) == len(DAYS)
    materialized = [e.materialization for e in result.get_asset_materialization_events()]
    assert sorted(m.partition or "" for m in materialized) == DAYS
    folder = Path(str(materialized[0].metadata["dagster/uri"].value))
    row_counts = materialized[0].metadata["iwatch/row_counts"].value
    assert sorted(p.name for p in folder.iterdir()) == [f"{day}.parquet" for day in DAYS]
    in_one_run = {day: pq.read_table(folder / f"{day}.parquet") for day in DAYS}

    # The same partitions, one run each, give the same rows.
    per_partition = build_iwatch_query_asset(5, key="per_partition", partitions_def=DAILY, partition_parameter="period")
    for day in DAYS:
        (single,) = runner.materialize([per_partition], partition_key=day).get_asset_materialization_events()
        alone = pq.read_table(Path(str(single.materialization.metadata["dagster/uri"].value)))
        table = in_one_run[day]
        assert table.num_rows > 0
        assert row_counts[day] == table.num_rows
        assert set(table.column("block_date").to_pylist()) == {date.fromisoformat(day)}
        assert table.to_pylist() == alone.to_pylist()
        assert table.schema.metadata[b"iwatch.parameters"] == alone.schema.metadata[b"iwatch.parameters"]


def test_multi_run_policy_and_concurrency_bound(runner: Runner) -> None:
    asset = build_iwatch_query_asset(
        IWatchQuerySpec(
            5,
            partitions_def=DAILY,
            partition_parameter="period",
            backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=2),
            max_concurrency=1,
        )
    )
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=2)
    result = runner.materialize([asset], tags=range_tags(DAYS[0], DAYS[1]))
    assert sorted(e.materialization.partition or "" for e in result.get_asset_materialization_events()) == DAYS[:2]
    assert posts(runner, 5) == 2


def test_a_failed_partition_fails_the_step_naming_it_and_writes_nothing(runner: Runner) -> None:
    tokens = dg.StaticPartitionsDefinition(["ETH", "NOPE", "WBTC"])
    asset = build_iwatch_query_asset(
        7, partitions_def=tokens, partition_parameter="token", backfill_policy=dg.BackfillPolicy.single_run()
    )
    result = runner.materialize([asset], tags=range_tags("ETH", "WBTC"), raise_on_error=False)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "partition NOPE" in message
    assert "partition ETH" not in message
    assert not result.get_asset_materialization_events()
    assert not (runner.base_path / "iwatch").exists() or not any((runner.base_path / "iwatch").rglob("*.parquet"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backfill_policy": dg.BackfillPolicy.single_run()}, "partitioned assets"),
        (
            {
                "partitions_def": DAILY,
                "partition_parameter": lambda context: {"period": None},
                "backfill_policy": dg.BackfillPolicy.single_run(),
            },
            "callable partition_parameter",
        ),
        ({"max_concurrency": 0}, "max_concurrency must be a positive integer"),
    ],
)
def test_bad_backfill_settings_are_refused_when_building(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_iwatch_query_asset(5, **fields)


def test_grouped_layout_materializes_a_subset_in_one_step(runner: Runner) -> None:
    (group,) = build_iwatch_query_assets([1, 12, 14], layout="grouped")
    assert group.can_subset
    keys = {dg.AssetKey(["iwatch", "query_1"]), dg.AssetKey(["iwatch", "query_12"])}

    result = runner.materialize([group], selection=list(keys))

    assert {e.materialization.asset_key for e in result.get_asset_materialization_events()} == keys
    assert len({e.step_key for e in result.all_events if e.is_step_success}) == 1
    assert not any(path.startswith("/api/queries/14") for _, path in runner.server.requests_seen)


def test_grouped_layout_spares_the_others_when_one_fails(runner: Runner) -> None:
    built = build_iwatch_query_assets([1, 10, 12], layout="grouped", max_concurrency=2)
    assert len(built) == 1
    result = runner.materialize(built, raise_on_error=False)

    assert not result.success
    materialized = {e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"query_1", "query_12"}
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error is not None
    assert "iwatch/query_10" in failure.step_failure_data.error.message


def test_grouped_layout_splits_by_partitions_and_keeps_per_query_the_default(runner: Runner) -> None:
    specs = [
        IWatchQuerySpec(1),
        IWatchQuerySpec(5, partitions_def=DAILY, partition_parameter="period"),
        IWatchQuerySpec(15, key="daily_prices_q", partitions_def=DAILY, partition_parameter="day"),
    ]
    assert len(build_iwatch_query_assets(specs)) == 3
    grouped = build_iwatch_query_assets(specs, layout="grouped")
    assert sorted(len(a.keys) for a in grouped) == [1, 2]
    with pytest.raises(ConfigError, match="layout"):
        build_iwatch_query_assets(specs, layout="nope")  # type: ignore[arg-type]


def test_one_query_over_the_range_splits_rows_into_partitions(runner: Runner) -> None:
    asset = build_iwatch_query_asset(
        5,
        partitions_def=DAILY,
        partition_parameter="period",
        backfill_policy=dg.BackfillPolicy.single_run(),
        range_query_column="block_date",
    )
    result = runner.materialize([asset], tags=range_tags(DAYS[0], DAYS[-1]))

    assert posts(runner, 5) == 1
    (materialization, *_) = [e.materialization for e in result.get_asset_materialization_events()]
    assert materialization.metadata["iwatch/parameters"].value == {"period": {"start": DAYS[0], "end": DAYS[-1]}}
    folder = Path(str(materialization.metadata["dagster/uri"].value))
    per_partition = build_iwatch_query_asset(5, key="per_partition", partitions_def=DAILY, partition_parameter="period")
    for day in DAYS:
        (single,) = runner.materialize([per_partition], partition_key=day).get_asset_materialization_events()
        alone = pq.read_table(Path(str(single.materialization.metadata["dagster/uri"].value)))
        split = pq.read_table(folder / f"{day}.parquet")
        assert split.num_rows > 0
        assert split.to_pylist() == alone.to_pylist()


def test_one_query_over_the_range_needs_a_range_parameter_and_a_time_column(runner: Runner) -> None:
    with pytest.raises(ConfigError, match="range_query_column needs a backfill_policy"):
        build_iwatch_query_asset(5, partitions_def=DAILY, partition_parameter="period", range_query_column="x")
    single_run = dg.BackfillPolicy.single_run()
    point = build_iwatch_query_asset(
        4, partitions_def=DAILY, partition_parameter="day", backfill_policy=single_run, range_query_column="day"
    )
    failed = runner.materialize([point], tags=range_tags(DAYS[0], DAYS[1]), raise_on_error=False)
    assert not failed.success
    assert posts(runner, 4) == 0
    no_column = build_iwatch_query_asset(
        5, partitions_def=DAILY, partition_parameter="period", backfill_policy=single_run, range_query_column="nope"
    )
    failed = runner.materialize([no_column], tags=range_tags(DAYS[0], DAYS[1]), raise_on_error=False)
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert failure.step_failure_data.error is not None
    assert "range_query_column 'nope' is not a column" in failure.step_failure_data.error.message
    assert not failed.get_asset_materialization_events()


def test_grouped_partitioned_queries_backfill_a_range_in_one_step(runner: Runner) -> None:
    single_run = dg.BackfillPolicy.single_run()
    specs = [
        IWatchQuerySpec(5, partitions_def=DAILY, partition_parameter="period", backfill_policy=single_run),
        IWatchQuerySpec(4, partitions_def=DAILY, partition_parameter="day", backfill_policy=single_run),
    ]
    (group,) = build_iwatch_query_assets(specs, layout="grouped")
    assert group.backfill_policy == single_run

    result = runner.materialize([group], tags=range_tags(DAYS[0], DAYS[2]))

    done = sorted(
        (e.materialization.asset_key.path[-1], e.partition or "") for e in result.get_asset_materialization_events()
    )
    assert done == sorted((name, day) for name in ("query_4", "query_5") for day in DAYS[:3])
    assert (posts(runner, 4), posts(runner, 5)) == (3, 3)
    for name in ("query_4", "query_5"):
        assert sorted(p.name for p in (runner.base_path / "iwatch" / f"{name}.partitions").iterdir()) == [
            f"{day}.parquet" for day in DAYS[:3]
        ]
