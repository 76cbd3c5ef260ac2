"""Asset factories: saved Inverse Watch queries become materialized Parquet assets.

Building definitions makes no HTTP call. What needs the query's details (its declared parameters, name and SQL) is
fetched when the asset runs; keys default to ``["iwatch", "query_<id>"]``, or derive from a ``name`` you give.
"""

import hashlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property, partial
from typing import Any, Literal, TypeAlias

import dagster as dg
import msgspec

from dagster_iwatch import checks as asset_checks
from dagster_iwatch._factory import (
    DEFAULT_MAX_CONCURRENCY,
    Member,
    build_group_step,
    build_step,
    check_concurrency,
    unique_keys,
)
from dagster_iwatch.errors import (
    ConfigError,
)
from dagster_iwatch.partitions import (
    RANGE_WITH_CALLABLE,
    PartitionParameter,
    RangeEnd,
    check_partition_parameter,
)
from dagster_iwatch.query_step import CACHED_WITH_PARAMETERS, materialize
from dagster_iwatch.query_step import iwatch_failure as iwatch_failure
from dagster_iwatch.state import QueryRecord

Mode: TypeAlias = Literal["execute", "cached"]
Layout: TypeAlias = Literal["per_query", "grouped"]

DEFAULT_KINDS = frozenset({"iwatch", "parquet"})


@dataclass(frozen=True)
class IWatchQuerySpec:
    """What to build for one saved query.

    Args:
        query_id: The saved query's id.
        key: The asset key; by default derived by the translator (``["iwatch", "query_<id>"]``, or
            ``["iwatch", <snake_case name>]`` when ``name`` is given).
        name: The query's name, when you want the key and description to use it.
        description: The asset's description (default: names the query).
        parameters: Static parameter values (Python values: numbers, strings, dates, ``(start, end)`` tuples...).
        partitions_def: The asset's partitions.
        partition_parameter: The parameter each partition fills (see :mod:`dagster_iwatch.partitions`), a
            ``{dimension: parameter}`` mapping for multi-partitions, or a callable of the context.
        range_end: ``"inclusive"`` (Redash's convention, default) or ``"exclusive"`` end for ranges filled from a
            time window.
        max_age: Reuse a server-side cached result at most this many seconds old; 0 always runs the query.
        mode: ``"execute"`` runs the query; ``"cached"`` reads its latest cached result without running it.
        checks: Asset checks to switch on: ``"not_empty"``, ``"schema_unchanged"``, ``"fresh"``.
        max_result_age: For the ``fresh`` check: how old the result may be.
        group_name, owners, tags, kinds, metadata, deps, automation_condition: As on ``dagster.AssetSpec``.
        pool: A Dagster concurrency pool that limits how many of these run at once; by default the instance's
            (``iwatch``, or ``iwatch_<resource_key>``), shared by every asset that queries it.
        retry_policy: A Dagster retry policy for the step.
        backfill_policy: For a partitioned asset, ``dagster.BackfillPolicy.single_run()`` (a backfill is one run)
            or ``multi_run(max_partitions_per_run=N)``: a run over a partition range queries each partition, up
            to ``max_concurrency`` at a time, and stores each in its own partition file. Default: one run per
            partition.
        max_concurrency: How many partitions of a range run at once (each with its own client).
        range_query_column: Opt-in, for a time-window partitioned query whose partition parameter is a date or
            datetime range: a run over a range sends one query over the whole range and splits its rows into the
            partitions by this date or timestamp column. One job instead of one per partition, but one result
            held in memory for the range, and rows outside every window (or with a null) are dropped.
        io_manager_key: The IO manager to store the table with (default: ``io_manager``).
        record: The query as a snapshot holds it (see :mod:`dagster_iwatch.state`): the translator then gives the
            asset the query's name, description, SQL, tags, owner and parameters, and a code version.
    """

    query_id: int
    key: dg.AssetKey | str | Sequence[str] | None = None
    name: str | None = None
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    partitions_def: dg.PartitionsDefinition | None = None
    partition_parameter: PartitionParameter | None = None
    range_end: RangeEnd = "inclusive"
    max_age: int = 0
    mode: Mode = "execute"
    checks: Collection[str] = ()
    max_result_age: timedelta | None = None
    group_name: str | None = None
    owners: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    kinds: Collection[str] = DEFAULT_KINDS
    metadata: Mapping[str, Any] = field(default_factory=dict)
    deps: Sequence[dg.AssetKey | str | Sequence[str]] = ()
    automation_condition: dg.AutomationCondition[Any] | None = None
    pool: str | None = None
    retry_policy: dg.RetryPolicy | None = None
    backfill_policy: dg.BackfillPolicy | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    range_query_column: str | None = None
    io_manager_key: str | None = None
    record: QueryRecord | None = None

    def __post_init__(self) -> None:
        if isinstance(self.query_id, bool) or not isinstance(self.query_id, int) or self.query_id <= 0:
            raise ConfigError(f"query_id must be a positive integer, got {self.query_id!r}")
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0:
            raise ConfigError(f"max_age must be a whole number of seconds >= 0, got {self.max_age!r}")
        if self.record is not None and self.record.id != self.query_id:
            raise ConfigError(f"record is query {self.record.id}, the spec's query_id is {self.query_id}")
        if self.mode not in ("execute", "cached"):
            raise ConfigError(f"mode must be 'execute' or 'cached', got {self.mode!r}")
        if self.range_end not in ("inclusive", "exclusive"):
            raise ConfigError(f"range_end must be 'inclusive' or 'exclusive', got {self.range_end!r}")
        if self.mode == "cached" and (self.parameters or self.partitions_def is not None):
            raise ConfigError(
                f"query {self.query_id}: mode='cached' reads the query's latest cached result, which has no "
                "parameters; use mode='execute' (with max_age to reuse cached results) for parameters or partitions"
            )
        if self.mode == "cached" and self.record is not None and self.record.parameters:
            raise ConfigError(f"query {self.query_id} declares parameters: {CACHED_WITH_PARAMETERS}")
        check_partition_parameter(self.partitions_def, self.partition_parameter)
        check_concurrency(self.max_concurrency)
        if self.backfill_policy is not None:
            if not isinstance(self.backfill_policy, dg.BackfillPolicy):
                raise ConfigError(f"backfill_policy must be a dagster.BackfillPolicy, got {self.backfill_policy!r}")
            if self.partitions_def is None:
                raise ConfigError("backfill_policy applies to partitioned assets; give a partitions_def or drop it")
            if callable(self.partition_parameter):
                raise ConfigError(f"query {self.query_id}: {RANGE_WITH_CALLABLE}")
        if self.range_query_column is not None and (
            self.backfill_policy is None
            or not isinstance(self.partitions_def, dg.TimeWindowPartitionsDefinition)
            or not isinstance(self.partition_parameter, str)
        ):
            raise ConfigError(
                f"query {self.query_id}: range_query_column needs a backfill_policy, a time-window partitions_def "
                "(daily, weekly, monthly...) and a partition_parameter naming the range parameter"
            )
        if isinstance(self.partition_parameter, str):
            filled = {self.partition_parameter}
        elif isinstance(self.partition_parameter, Mapping):
            filled = set(self.partition_parameter.values())
        else:
            filled = set()
        both = sorted(filled & set(self.parameters))
        if both:
            raise ConfigError(f"parameters {both} are both static and filled by the partition; drop one")

    @cached_property
    def default_key(self) -> dg.AssetKey:
        """The asset key unless a translator gives another: ``key``, else from the name, else ``query_<id>``.

        The name is the spec's, then the record's; the key is ``["iwatch", <name in snake case>]`` or
        ``["iwatch", "query_<id>"]``.

        One object per spec, however often it is asked for: the key of the asset and the deps naming it elsewhere
        are then the same object, which Dagster's dependency resolution matches by identity instead of comparing.
        """
        if self.key is not None:
            return dg.AssetKey.from_coercible(self.key)
        name = self.name or (self.record.name if self.record else None)
        if name:
            return dg.AssetKey(["iwatch", snake_case(name)])
        return dg.AssetKey(["iwatch", f"query_{self.query_id}"])

    def with_deps(self, deps: Sequence[dg.AssetKey]) -> "IWatchQuerySpec":
        """The spec with ``deps`` added to its own, for the lineage a snapshot tells.

        Deps take no part in the checks of ``__post_init__``, so the copy skips them: ``dataclasses.replace`` would
        validate every field again, which costs more than the rest of a spec's translation.
        """
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, deps=[*self.deps, *deps])
        return copy


class IWatchTranslator:
    """Turns a query spec into the Dagster ``AssetSpec``. Subclass it to apply rules to a whole instance.

    Example:
        .. code-block:: python

            class MyTranslator(IWatchTranslator):
                def get_asset_spec(self, spec: IWatchQuerySpec) -> dg.AssetSpec:
                    return super().get_asset_spec(spec).replace_attributes(group_name="onchain")
    """

    def get_asset_key(self, spec: IWatchQuerySpec) -> dg.AssetKey:
        """The asset key: the spec's own, else from the query's name, else ``["iwatch", "query_<id>"]``."""
        return spec.default_key

    def get_asset_spec(self, spec: IWatchQuerySpec) -> dg.AssetSpec:
        """The asset spec for a query spec; a spec with a snapshot record gets what the record tells."""
        record = spec.record
        asset_spec = dg.AssetSpec(
            key=self.get_asset_key(spec),
            description=spec.description or _description(spec),
            group_name=spec.group_name,
            owners=list(spec.owners) or _owners(record),
            tags={**(record_tags(record.tags) if record else {}), **spec.tags},
            kinds=set(spec.kinds),
            metadata={"iwatch/query_id": spec.query_id, **(record_metadata(record) if record else {}), **spec.metadata},
            deps=list(spec.deps),
            partitions_def=spec.partitions_def,
            automation_condition=spec.automation_condition,
            code_version=record.code_version if record else None,
        )
        return asset_spec.with_io_manager_key(spec.io_manager_key) if spec.io_manager_key else asset_spec


# Dagster takes an owner email only with a dot in its domain; another email stays in the metadata.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_ALNUM = re.compile(r"[^0-9a-zA-Z]+")


def _description(spec: IWatchQuerySpec) -> str:
    record = spec.record
    if record is None:
        label = f"{spec.name!r} (Inverse Watch query {spec.query_id})" if spec.name else f"query {spec.query_id}"
        return f"Result of Inverse Watch {label}, stored as Parquet."
    parts = [f"**{spec.name or record.name}** (Inverse Watch query {record.id})"]
    if record.description:
        parts.append(record.description)
    parts.append(f"```sql\n{record.sql}\n```")
    return "\n\n".join(parts)


def _owners(record: QueryRecord | None) -> list[str]:
    email = record.owner_email if record else None
    return [email] if email and _EMAIL.match(email) else []


def record_tags(tags: Sequence[str]) -> dict[str, str]:
    """Inverse Watch tags as Dagster tags (``{tag: ""}``), each made a valid tag key."""
    out = {}
    for tag in tags:
        name = _TAG_INVALID.sub("_", tag).strip("_.-")[:63]
        if name:
            out[name] = ""
    return out


def record_metadata(record: QueryRecord) -> dict[str, Any]:
    """What the asset shows of a query from a snapshot: its name, parameters, schedule and SQL hash."""
    metadata: dict[str, Any] = {
        "iwatch/query_name": record.name,
        "iwatch/sql_hash": record.sql_hash,
        "iwatch/parameters": dg.MetadataValue.json(
            [{"name": p.name, "type": p.type, "default": p.value} for p in record.parameters]
        ),
        "iwatch/tags": dg.MetadataValue.json(list(record.tags)),
    }
    if record.owner_email:
        metadata["iwatch/owner_email"] = record.owner_email
    if record.schedule is not None:
        metadata["iwatch/schedule"] = dg.MetadataValue.json(msgspec.to_builtins(record.schedule))
    return metadata


TranslatorLike: TypeAlias = IWatchTranslator | Callable[[IWatchQuerySpec, dg.AssetSpec], dg.AssetSpec]
"""A translator, or a function that receives a query spec and its default asset spec and returns the spec to use."""


class _FunctionTranslator(IWatchTranslator):
    def __init__(self, function: Callable[[IWatchQuerySpec, dg.AssetSpec], dg.AssetSpec]) -> None:
        self._function = function

    def get_asset_spec(self, spec: IWatchQuerySpec) -> dg.AssetSpec:
        return self._function(spec, super().get_asset_spec(spec))


def as_translator(translator: TranslatorLike | None) -> IWatchTranslator:
    """The translator to use: the default one, the one given, or one that applies the function given."""
    if translator is None:
        return IWatchTranslator()
    if isinstance(translator, IWatchTranslator):
        return translator
    if callable(translator):
        return _FunctionTranslator(translator)
    raise ConfigError(f"translator must be an IWatchTranslator or a function, got {type(translator).__name__}")


def snake_case(name: str) -> str:
    """A query name as an asset-key part: lower case, words joined by underscores."""
    return _NOT_ALNUM.sub("_", name).strip("_").lower() or "query"


def build_iwatch_query_asset(
    query_id: int | IWatchQuerySpec,
    *,
    key: dg.AssetKey | str | Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_parameter: PartitionParameter | None = None,
    max_age: int = 0,
    translator: TranslatorLike | None = None,
    resource_key: str = "iwatch",
    **spec_fields: Any,
) -> dg.AssetsDefinition:
    """Build an asset that runs a saved query and hands its typed result to the IO manager as a Parquet table.

    Args:
        query_id: The saved query's id, or a complete :class:`IWatchQuerySpec`.
        key: The asset key (default ``["iwatch", "query_<id>"]``).
        parameters: Static parameter values.
        partitions_def: The asset's partitions.
        partition_parameter: The query parameter each partition fills: a date parameter gets the window's start,
            a date-range or datetime-range parameter the window (inclusive end by default), a text or enum
            parameter the partition key; a callable ``(context) -> {name: value}`` covers anything else.
        max_age: Reuse a cached result at most this many seconds old (0: always run).
        translator: Rules for keys, descriptions and other asset attributes: an :class:`IWatchTranslator`, or a
            function ``(query_spec, default_asset_spec) -> AssetSpec``.
        resource_key: The key of the :class:`IWatchResource` in your Definitions.
        **spec_fields: Any other :class:`IWatchQuerySpec` field (group_name, owners, tags, mode, checks, pool...).

    Returns:
        The asset definition. Its value is a ``pyarrow.Table``; use :class:`IWatchParquetIOManager` to store it.

    Raises:
        ConfigError: An inconsistent spec (for example a partitions_def without partition_parameter), or a
            spec together with spec fields.

    Example:
        .. code-block:: python

            daily_volume = build_iwatch_query_asset(
                5,
                key=["onchain", "daily_volume"],
                partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
                partition_parameter="period",
            )
    """
    if isinstance(query_id, IWatchQuerySpec):
        given: dict[str, Any] = dict(key=key, parameters=parameters, partitions_def=partitions_def)
        given |= dict(partition_parameter=partition_parameter, max_age=max_age or None, **spec_fields)
        ignored = sorted(name for name, value in given.items() if value is not None)
        if ignored:
            raise ConfigError(f"pass either an IWatchQuerySpec or its fields, not both; set {ignored} on the spec")
        spec = query_id
    else:
        spec = IWatchQuerySpec(
            query_id=query_id,
            key=key,
            parameters=dict(parameters or {}),
            partitions_def=partitions_def,
            partition_parameter=partition_parameter,
            max_age=max_age,
            **spec_fields,
        )
    return _build(spec, as_translator(translator), resource_key)


def build_iwatch_query_assets(
    specs: Sequence[int | IWatchQuerySpec],
    *,
    translator: TranslatorLike | None = None,
    resource_key: str = "iwatch",
    layout: Layout = "per_query",
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> list[dg.AssetsDefinition]:
    """Build the assets of many saved queries: one step per query, or a few subsettable steps.

    Args:
        specs: Query ids (all defaults) or complete :class:`IWatchQuerySpec` objects.
        translator: Rules applied to every spec: an :class:`IWatchTranslator`, or a function
            ``(query_spec, default_asset_spec) -> AssetSpec``.
        resource_key: The key of the :class:`IWatchResource` in your Definitions.
        layout: ``"per_query"`` (default): one asset definition, and so one step, per query. ``"grouped"``: one
            subsettable multi-asset per set of queries that share partitions, pool, retry and backfill policy;
            a run materializes the selected ones in one step, ``max_concurrency`` at a time, and one query's
            failure spares the others (the step fails at the end, naming it).
        max_concurrency: In the grouped layout, how many of a step's queries run at once.

    Returns:
        One asset definition per spec in the order given, or (grouped) one per set of queries.

    Raises:
        ConfigError: Two specs give the same asset key, a spec is inconsistent, or a bad layout or concurrency.
    """
    if layout not in ("per_query", "grouped"):
        raise ConfigError(f"layout must be 'per_query' or 'grouped', got {layout!r}")
    check_concurrency(max_concurrency)
    rules = as_translator(translator)
    query_specs = [s if isinstance(s, IWatchQuerySpec) else IWatchQuerySpec(query_id=s) for s in specs]
    if layout == "per_query":
        built = [_build(s, rules, resource_key) for s in query_specs]
        unique_keys(built)
        return built
    members = [(s, query_member(s, rules.get_asset_spec(s))) for s in query_specs]
    unique_keys(m.asset_spec for _, m in members)
    return _grouped(members, resource_key, max_concurrency)


def _grouped(
    members: Sequence[tuple[IWatchQuerySpec, Member]], resource_key: str, max_concurrency: int
) -> list[dg.AssetsDefinition]:
    # One step must share its partitions, pool and policies; the name hashes the keys so that two calls differ.
    groups: dict[tuple[Any, ...], list[tuple[IWatchQuerySpec, Member]]] = {}
    for spec, member in members:
        policies = (spec.pool, spec.retry_policy, spec.backfill_policy)
        same = next((k for k in groups if k[0] == member.asset_spec.partitions_def and k[1:] == policies), None)
        groups.setdefault(same or (member.asset_spec.partitions_def, *policies), []).append((spec, member))
    built = []
    for (_, pool, retry_policy, backfill_policy), grouped in groups.items():
        keys = ",".join(m.asset_spec.key.to_user_string() for _, m in grouped)
        built.append(
            build_group_step(
                f"iwatch_queries_{hashlib.sha256(keys.encode()).hexdigest()[:10]}",
                [m for _, m in grouped],
                resource_key=resource_key,
                max_concurrency=max_concurrency,
                pool=pool,
                retry_policy=retry_policy,
                backfill_policy=backfill_policy,
            )
        )
    return built


def _build(spec: IWatchQuerySpec, translator: IWatchTranslator, resource_key: str) -> dg.AssetsDefinition:
    return build_query_step(spec, translator.get_asset_spec(spec), resource_key)


def build_query_step(spec: IWatchQuerySpec, asset_spec: dg.AssetSpec, resource_key: str) -> dg.AssetsDefinition:
    """The asset definition of a query spec, with the asset spec its translator gave.

    Raises:
        ConfigError: The translator's partitions do not fit the spec's partition parameter, or a bad check name.
    """
    member = query_member(spec, asset_spec)
    return build_step(
        member.asset_spec,
        member.body,
        resource_key=resource_key,
        check_specs=member.check_specs,
        pool=spec.pool,
        retry_policy=spec.retry_policy,
        backfill_policy=spec.backfill_policy,
    )


def query_member(spec: IWatchQuerySpec, asset_spec: dg.AssetSpec) -> Member:
    """A query spec as one asset of a step: its asset spec, its materialization and its checks.

    Raises:
        ConfigError: The translator's partitions do not fit the spec's partition parameter, or a bad check name.
    """
    if asset_spec.partitions_def != spec.partitions_def:
        spec = replace(spec, partitions_def=asset_spec.partitions_def)
        check_partition_parameter(spec.partitions_def, spec.partition_parameter)
    return Member(
        asset_spec,
        partial(materialize, spec=spec),
        asset_checks.check_specs(asset_spec.key, spec.checks, spec.max_result_age),
    )
