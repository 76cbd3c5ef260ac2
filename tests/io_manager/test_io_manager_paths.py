"""Every (asset key, partition key) has a file of its own inside base_path, on real files through Dagster runs."""

from pathlib import Path, PurePosixPath
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from dagster_iwatch.io_manager import IWatchParquetIOManager, read_parquet
from dagster_iwatch.parquet_paths import (
    asset_relative_path,
    escape_segment,
    legacy_asset_relative_path,
    op_output_relative_path,
    unescape_segment,
)

# Partition keys that an unescaped layout mixes up: each line of the list, and more of the same kind.
TRICKY_PARTITIONS = [
    "b",
    "a/b",
    "a//b",
    "a/./b",
    "a\\b",
    "..",
    "%2E%2E",
    "%2e%2e",
    ".",
    "/abs",
    "./abs",
    "../../escape",
    "ETH",
    "eth",
    "Eth",
    "!e!t!h",
    "%",
    "%25",
    "2024-01-01",
    "2024-01-01-00:00",
    "v1.2",
    "v1.2.",
    ".hidden",
    " x",
    "x ",
    "é",
    "e\u0301",
    "x.parquet",
    "x.partitions",
    "x.run",
    "",
]

TRICKY_ASSET_KEYS = [
    ["q"],
    ["Q"],
    ["q", "b"],
    ["q", "B"],
    ["q.partitions", "b"],
    ["q.parquet", "b"],
    ["q.run", "b"],
    ["..", "..", "escape"],
    ["/abs"],
    ["a/b"],
    ["a", "b"],
    ["%2E%2E"],
    [".."],
    ["."],
    [""],
    ["q-b"],
    ["q_b"],
]


def all_paths() -> list[tuple[Any, str]]:
    found: list[tuple[Any, str]] = []
    for asset_key in TRICKY_ASSET_KEYS:
        found.append(((tuple(asset_key), None), asset_relative_path(asset_key)))
        for partition in TRICKY_PARTITIONS:
            found.append(((tuple(asset_key), partition), asset_relative_path(asset_key, partition)))
        for dims in ({"a": "x", "b": "y"}, {"a": "x/y", "b": "z"}, {"a": "x", "b": "y/z"}, {"c": "X", "d": "y"}):
            found.append(((tuple(asset_key), tuple(sorted(dims.items()))), asset_relative_path(asset_key, dims)))
    for identifier in (["run-1", "make", "result"], ["run-1", "fan[0]", "result"], ["q", "b", "c"]):
        found.append((("op", *identifier), op_output_relative_path(identifier)))
    return found


def test_mapping_is_injective_even_ignoring_case() -> None:
    found = all_paths()
    by_folded: dict[str, Any] = {}
    for key, path in found:
        folded = path.casefold()
        assert folded not in by_folded or by_folded[folded] == key, f"{key} and {by_folded[folded]} share {path}"
        by_folded[folded] = key
    assert len(by_folded) == len(found)


def test_every_path_stays_inside_the_base_folder() -> None:
    for key, path in all_paths():
        parts = PurePosixPath(path).parts
        assert not PurePosixPath(path).is_absolute(), key
        assert all(part not in ("", ".", "..") for part in parts), (key, path)
        assert all("\\" not in part and ":" not in part for part in parts), (key, path)
        assert path.endswith(".parquet"), key


@pytest.mark.parametrize("value", [*TRICKY_PARTITIONS, "ünïcödé/\x00\n", "\ud800"])
@pytest.mark.parametrize("dots", [True, False])
def test_escape_round_trips(value: str, dots: bool) -> None:
    segment = escape_segment(value, dots=dots)
    assert unescape_segment(segment) == value
    assert segment == segment.lower()
    assert segment not in ("", ".", "..")
    assert "/" not in segment
    if not dots:
        assert "." not in segment


def test_ordinary_keys_keep_readable_names() -> None:
    assert asset_relative_path(["iwatch", "transfers"]) == "iwatch/transfers.parquet"
    assert asset_relative_path(["iwatch", "volume"], "2024-01-01") == "iwatch/volume.partitions/2024-01-01.parquet"
    assert asset_relative_path(["prices"], {"day": "d2", "chain": "eth"}) == "prices.partitions/eth/d2.parquet"
    assert asset_relative_path(["q"], "ETH") == "q.partitions/!e!t!h.parquet"
    assert asset_relative_path(["q"], "a/b") == "q.partitions/a%2fb.parquet"
    assert asset_relative_path(["q"], "..") == "q.partitions/%2e%2e.parquet"
    assert asset_relative_path(["q"], "%2E%2E") == "q.partitions/%252!e%252!e.parquet"
    assert op_output_relative_path(["0b1c-run", "make", "result"]) == "0b1c-run.run/make/result.parquet"
    assert legacy_asset_relative_path(["iwatch", "volume"], "2024-01-01") == "iwatch/volume/2024-01-01.parquet"


@pytest.mark.parametrize("bad", ["%", "%2", "%zz", "%2E", "!", "!A", "!1"])
def test_unescape_refuses_what_escape_never_writes(bad: str) -> None:
    if bad == "%":
        assert unescape_segment(bad) == ""
        return
    with pytest.raises(ValueError, match="escape"):
        unescape_segment(bad)


def identity_asset(key: list[str], partitions: list[str] | None = None) -> dg.AssetsDefinition:
    """An asset whose value names its own key and partition, so that an overwrite by another key shows."""
    partitions_def = dg.StaticPartitionsDefinition(partitions) if partitions else None

    @dg.asset(key=dg.AssetKey(key), partitions_def=partitions_def)
    def _asset(context: dg.AssetExecutionContext) -> pa.Table:
        partition = context.partition_key if partitions else None
        return pa.table({"key": ["/".join(key)], "partition": [partition]})

    return _asset


def materialize_all(base_dir: Path, key: list[str], partitions: list[str] | None = None) -> dict[Any, str]:
    """Materialize every partition of the asset; return where Dagster recorded each file."""
    asset = identity_asset(key, partitions)
    manager = IWatchParquetIOManager(base_path=str(base_dir))
    uris: dict[Any, str] = {}
    for partition in partitions or [None]:
        result = dg.materialize([asset], partition_key=partition, resources={"io_manager": manager})
        assert result.success
        [event] = result.get_asset_materialization_events()
        metadata = event.step_materialization_data.materialization.metadata
        uris[(tuple(key), partition)] = str(metadata["dagster/uri"].value)
    return uris


def test_colliding_keys_of_the_old_layout_get_files_of_their_own(tmp_path: Path) -> None:
    base_dir = tmp_path / "base" / "parquet"
    # Dagster refuses a few of the trickiest keys as partition keys ("" and some characters), so take those
    # that it accepts: the mapping itself covers the rest above.
    partitions = [p for p in TRICKY_PARTITIONS if p and "," not in p and p.strip() == p]
    root_file = Path("/abs.parquet")
    before = root_file.stat().st_mtime_ns if root_file.exists() else None
    uris: dict[Any, str] = {}
    uris |= materialize_all(base_dir, ["q"], partitions)
    uris |= materialize_all(base_dir, ["q", "b"])
    uris |= materialize_all(base_dir, ["r"])
    uris |= materialize_all(base_dir, ["r"], ["."])  # the same key, partitioned later
    uris |= materialize_all(base_dir, ["..", "..", "escape"])
    uris |= materialize_all(base_dir, ["q.partitions", "b"])

    assert len(set(uris.values())) == len(uris)
    assert len({uri.casefold() for uri in uris.values()}) == len(uris)
    for (key, partition), uri in uris.items():
        path = Path(uri)
        assert path.is_relative_to(base_dir.resolve()), uri
        assert read_parquet(path).to_pylist() == [{"key": "/".join(key), "partition": partition}], uri
    # Nothing was written anywhere else: next to the base folder, or at the filesystem's root.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["parquet"]
    assert (root_file.stat().st_mtime_ns if root_file.exists() else None) == before
    on_disk = {str(p) for p in base_dir.resolve().rglob("*.parquet") if p.is_file()}
    assert on_disk == set(uris.values())


def test_downstream_reads_each_partition_from_its_own_file(base_dir: Path) -> None:
    partitions = ["a/b", "a//b", "a/./b", "..", "%2E%2E", "ETH", "eth"]
    upstream = identity_asset(["src"], partitions)
    seen: dict[str, Any] = {}

    @dg.asset(deps=[dg.AssetKey("src")], ins={"src": dg.AssetIn(key="src")})
    def combined(src: dict[str, pa.Table]) -> None:
        seen.update(src)

    manager = IWatchParquetIOManager(base_path=str(base_dir))
    for partition in partitions:
        assert dg.materialize([upstream], partition_key=partition, resources={"io_manager": manager}).success
    assert dg.materialize([upstream, combined], selection=[combined.key], resources={"io_manager": manager}).success
    assert {key: table.column("partition").to_pylist() for key, table in seen.items()} == {
        key: [key] for key in partitions
    }


def test_missing_file_at_the_new_path_points_to_the_old_layout(base_dir: Path) -> None:
    days = dg.StaticPartitionsDefinition(["2024-01-01"])

    @dg.asset(partitions_def=days, key_prefix="iwatch")
    def volume() -> pa.Table:
        return pa.table({"v": [1]})

    @dg.asset(ins={"volume": dg.AssetIn(key=["iwatch", "volume"])})
    def reader(volume: pa.Table) -> None:
        pass

    old = base_dir / "iwatch" / "volume" / "2024-01-01.parquet"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"PAR1")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [volume, reader],
            selection=[reader.key],
            resources={"io_manager": IWatchParquetIOManager(base_path=str(base_dir))},
            instance=instance,
            raise_on_error=False,
        )
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert not result.success
    new = base_dir.resolve() / "iwatch" / "volume.partitions" / "2024-01-01.parquet"
    assert any(f"{new} is missing but {old.resolve()} exists" in m for m in messages), messages
