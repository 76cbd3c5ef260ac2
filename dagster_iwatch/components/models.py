"""The YAML models the Inverse Watch components share: the connection and the per-query options."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import dagster as dg
from dagster.components.resolved.core_models import (
    DailyPartitionsDefinitionModel,
    HourlyPartitionsDefinitionModel,
    StaticPartitionsDefinitionModel,
    TimeWindowPartitionsDefinitionModel,
    WeeklyPartitionsDefinitionModel,
    resolve_partitions_def,
)
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver

from dagster_iwatch.client import IWatchClient
from dagster_iwatch.state import DashboardRecord, QueryRecord
from dagster_iwatch.workspace import IWatchQueryOptions, query_run_fields

AssetRecord = QueryRecord | DashboardRecord
"""What a ``translation`` receives as ``data``: the snapshot's record of a query or a dashboard."""


def _template_vars(data: AssetRecord) -> Mapping[str, Any]:
    return {"data": data, "kind": "query" if isinstance(data, QueryRecord) else "dashboard"}


ResolvedIWatchTranslationFn = Annotated[
    TranslationFn[AssetRecord] | None,
    TranslationFnResolver[AssetRecord](_template_vars),
]
"""The ``translation`` field: asset attributes, with ``{{ data.* }}`` (the record) and ``{{ kind }}``."""

ResolvedPartitionsDefinition = Annotated[
    dg.PartitionsDefinition | None,
    dg.Resolver(
        resolve_partitions_def,
        description="The asset's partitions (hourly, daily, weekly, time_window or static).",
        model_field_type=Union[  # noqa: UP007 - the Resolver needs a runtime union of model types
            HourlyPartitionsDefinitionModel,
            DailyPartitionsDefinitionModel,
            WeeklyPartitionsDefinitionModel,
            TimeWindowPartitionsDefinitionModel,
            StaticPartitionsDefinitionModel,
        ],
    ),
]


@dataclass
class IWatchConnectionArgs(dg.Resolvable):
    """Where the instance is, for refreshing the snapshot.

    Attributes:
        url: The server's URL, e.g. ``{{ env.IWATCH_URL }}``.
        api_key: A user API key: ``{{ env.IWATCH_API_KEY }}`` (never written into the YAML itself).
        timeout: Seconds to wait for each answer.
    """

    url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    @property
    def host(self) -> str:
        """The server's host and port, which names the component's state."""
        return urlsplit(self.url).netloc or self.url

    def client(self) -> IWatchClient:
        """A client for this connection."""
        return IWatchClient(self.url, self.api_key, timeout=(10.0, self.timeout))


@dataclass(kw_only=True)
class QueryRunArgs(dg.Resolvable):
    """How a query runs: the YAML fields a query component and the per-query options share.

    Attributes:
        parameters: Static parameter values.
        partitions_def: The asset's partitions (hourly, daily, weekly, time_window or static).
        partition_parameter: The parameter each partition fills.
        range_end: ``inclusive`` (default) or ``exclusive`` end of ranges filled from a time window.
        max_age: Reuse a server-side result at most this many seconds old (0: always run).
        mode: ``execute`` runs the query; ``cached`` reads its latest result.
        checks: Asset checks: ``not_empty``, ``schema_unchanged``.
        group_name: The asset group.
        pool: A Dagster concurrency pool.
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    partitions_def: ResolvedPartitionsDefinition = None
    partition_parameter: str | None = None
    range_end: Literal["inclusive", "exclusive"] = "inclusive"
    max_age: int = 0
    mode: Literal["execute", "cached"] = "execute"
    checks: Sequence[str] = ()
    group_name: str | None = None
    pool: str | None = None

    def run_fields(self) -> dict[str, Any]:
        """These fields as keyword arguments of ``IWatchQuerySpec`` and ``IWatchQueryOptions``."""
        return query_run_fields(self)


@dataclass(kw_only=True)
class QueryOptionsArgs(QueryRunArgs):
    """How to run one query (``query_id``) or the queries with a tag (``tag``); the fields of :class:`QueryRunArgs`.

    Attributes:
        query_id: The query these options are for.
        tag: Or a tag: the options apply to the queries that have it (options by id come first).
    """

    query_id: int | None = None
    tag: str | None = None

    def to_options(self) -> IWatchQueryOptions:
        """The workspace's options."""
        return IWatchQueryOptions(query_id=self.query_id, tag=self.tag, **self.run_fields())
