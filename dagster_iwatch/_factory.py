"""The one piece query assets, dashboard assets and the components build on: a single-asset step that stores a table.

Each factory decides what its asset is (an ``AssetSpec`` from a spec and a translator) and what its step yields; this
module wires the two into a ``multi_asset`` the same way for all of them.
"""

import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import dagster as dg
import pyarrow as pa

from dagster_iwatch.errors import ConfigError
from dagster_iwatch.metadata import data_version

DEFAULT_IO_MANAGER_KEY = "io_manager"

#: How many partitions of a range a step queries at once, unless the spec says otherwise.
DEFAULT_MAX_CONCURRENCY = 4

T = TypeVar("T")

StepBody: TypeAlias = Callable[[dg.AssetExecutionContext, Any, dg.AssetKey, str], Iterator[Any]]
"""What a step yields, given the context, the Inverse Watch resource, the asset key and the output name."""


def stored(asset_spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec with an IO manager key: ``multi_asset`` types a spec without one as Nothing, yet the table is stored."""
    if asset_spec.metadata.get("dagster/io_manager_key"):
        return asset_spec
    return asset_spec.with_io_manager_key(DEFAULT_IO_MANAGER_KEY)


def default_pool(resource_key: str) -> str:
    """The Dagster pool of the assets that query the instance behind ``resource_key`` (one resource per instance).

    It is ``iwatch`` for the default resource key, ``iwatch_<key>`` for another. Set a limit on it (``dagster
    instance concurrency set iwatch 4``, or ``concurrency: pools:`` in ``dagster.yaml``) to cap how many queries
    run on that instance at once; without a limit it restricts nothing.
    """
    return "iwatch" if resource_key == "iwatch" else f"iwatch_{resource_key}"


def build_step(
    asset_spec: dg.AssetSpec,
    body: StepBody,
    *,
    resource_key: str,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
    pool: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    backfill_policy: dg.BackfillPolicy | None = None,
) -> dg.AssetsDefinition:
    """An asset definition of one stored asset whose step runs ``body`` with the Inverse Watch resource.

    Built from the spec itself, so every attribute a translator sets (code version, freshness, deps...) is kept.
    """
    asset_spec = stored(asset_spec)
    key = asset_spec.key
    output_name = key.to_python_identifier()

    @dg.multi_asset(
        name=output_name,
        specs=[asset_spec],
        check_specs=list(check_specs),
        required_resource_keys={resource_key},
        pool=pool or default_pool(resource_key),
        retry_policy=retry_policy,
        backfill_policy=backfill_policy,
    )
    def _asset(context: dg.AssetExecutionContext) -> Iterator[Any]:
        yield from body(context, getattr(context.resources, resource_key), key, output_name)

    return _asset


@dataclass(frozen=True)
class Member:
    """One asset of a grouped step: its spec, what its step yields, and its checks."""

    asset_spec: dg.AssetSpec
    body: StepBody
    check_specs: Sequence[dg.AssetCheckSpec] = ()


def build_group_step(
    name: str,
    members: Sequence[Member],
    *,
    resource_key: str,
    max_concurrency: int = 1,
    pool: str | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    backfill_policy: dg.BackfillPolicy | None = None,
) -> dg.AssetsDefinition:
    """One subsettable asset definition for many stored assets that share their partitions; one op builds them all.

    A run materializes the selected assets in one step, up to ``max_concurrency`` at a time (each asset's work,
    its requests included, runs on a worker thread; its events are yielded from the step as it finishes). An asset
    that fails does not stop the others; the step fails at the end, naming each failed asset, and allows a retry
    only when every failure does. Building one op instead of one per asset is what keeps loading thousands of
    assets fast.

    Raises:
        ConfigError: ``max_concurrency`` is not a positive integer.
    """
    check_concurrency(max_concurrency)
    specs = [stored(m.asset_spec) for m in members]
    bodies = {spec.key: (m.body, spec.key.to_python_identifier()) for spec, m in zip(specs, members, strict=True)}
    order = [spec.key for spec in specs]

    @dg.multi_asset(
        name=name,
        specs=specs,
        check_specs=[c for m in members for c in m.check_specs],
        can_subset=True,
        required_resource_keys={resource_key},
        pool=pool or default_pool(resource_key),
        retry_policy=retry_policy,
        backfill_policy=backfill_policy,
    )
    def _group(context: dg.AssetExecutionContext) -> Iterator[Any]:
        resource = getattr(context.resources, resource_key)
        selected_checks = context.selected_asset_check_keys
        selected = [k for k in order if k in context.selected_asset_keys]
        failures: list[tuple[dg.AssetKey, dg.Failure]] = []

        def run(key: dg.AssetKey) -> list[Any]:
            body, output_name = bodies[key]
            return list(body(context, resource, key, output_name))

        with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix=name) as workers:
            futures = {workers.submit(run, key): key for key in selected}
            try:
                for future in as_completed(futures):
                    key = futures[future]
                    try:
                        events = future.result()
                    except dg.Failure as failure:
                        context.log.error(f"{key.to_user_string()}: {failure.description}")
                        failures.append((key, failure))
                        continue
                    yield from (
                        e for e in events if not isinstance(e, dg.AssetCheckResult) or _check_key(e) in selected_checks
                    )
            finally:
                # A step torn down (or an unexpected error) starts no further asset.
                for future in futures:
                    future.cancel()
        if failures:
            raise dg.Failure(
                description="; ".join(f"{k.to_user_string()}: {f.description}" for k, f in failures),
                metadata={"failed_assets": dg.MetadataValue.json([k.to_user_string() for k, _ in failures])},
                allow_retries=all(f.allow_retries for _, f in failures),
            )

    return _group


def check_concurrency(max_concurrency: int) -> None:
    """Refuse a concurrency that is not a positive integer.

    Raises:
        ConfigError: ``max_concurrency`` is not a positive integer.
    """
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")


def each_partition(keys: Sequence[str], work: Callable[[str], T], *, max_concurrency: int, name: str) -> dict[str, T]:
    """``work`` for each partition key, up to ``max_concurrency`` at a time, as ``{key: value}`` in key order.

    After a partition fails no further one starts (those under way finish); the step then fails, naming each
    failed partition, and allows a retry only when every failure does.

    Raises:
        dagster.Failure: One or more partitions failed.
    """
    done: dict[str, T] = {}
    failures: dict[str, dg.Failure] = {}
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix=name) as workers:
        futures = {workers.submit(work, key): key for key in keys}
        try:
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    done[futures[future]] = future.result()
                except dg.Failure as failure:
                    failures[futures[future]] = failure
                    for pending in futures:
                        pending.cancel()
        finally:
            for pending in futures:
                pending.cancel()
    if failures:
        failed = [k for k in keys if k in failures]
        raise dg.Failure(
            description="; ".join(f"partition {k}: {failures[k].description}" for k in failed),
            metadata={"failed_partitions": dg.MetadataValue.json(failed)},
            allow_retries=all(f.allow_retries for f in failures.values()),
        )
    return {k: done[k] for k in keys}


def _check_key(result: dg.AssetCheckResult) -> dg.AssetCheckKey:
    assert result.asset_key is not None  # the query and dashboard bodies always name the asset
    return dg.AssetCheckKey(result.asset_key, result.check_name or "")


def table_output(table: pa.Table, output_name: str, metadata: Mapping[str, Any]) -> dg.Output[pa.Table]:
    """The step's output: the table, its metadata, and a data version from its content."""
    return versioned_output(table, output_name, metadata, data_version(table))


def versioned_output(
    value: T, output_name: str, metadata: Mapping[str, Any], version: dg.DataVersion | None
) -> dg.Output[T]:
    """The step's output with its metadata and data version."""
    with warnings.catch_warnings():
        # Output(data_version=...) is marked beta, yet it is the documented way to version a result.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, output_name, metadata=dict(metadata), data_version=version)


def check_names(checks: Collection[str], known: Mapping[str, str], what: str = "asset checks") -> list[str]:
    """The check names, sorted and without repeats.

    Raises:
        ConfigError: ``checks`` is a single string, or names a check not in ``known``.
    """
    if isinstance(checks, str):
        raise ConfigError(f"checks must be a list of check names, e.g. [{checks!r}], not a string")
    unknown = set(checks) - set(known)
    if unknown:
        raise ConfigError(f"unknown {what} {sorted(unknown)}; choose from {sorted(known)}")
    return sorted(set(checks))


def unique_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec], what: str = "query specs") -> None:
    """Refuse two assets with one key, in one pass.

    Raises:
        ConfigError: Several assets share a key; the message lists the keys.
    """
    seen: set[dg.AssetKey] = set()
    duplicates: set[str] = set()
    for asset in assets:
        for key in asset.keys if isinstance(asset, dg.AssetsDefinition) else (asset.key,):
            if key in seen:
                duplicates.add(key.to_user_string())
            seen.add(key)
    if duplicates:
        raise ConfigError(f"several {what} give the asset keys {sorted(duplicates)}; set distinct keys")
