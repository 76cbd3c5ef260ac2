"""``IWatchQueryComponent``: one saved query as a Parquet asset, its parameters and partitions in one YAML file."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import dagster as dg
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import BaseModel

from dagster_iwatch.assets import DEFAULT_KINDS, IWatchQuerySpec, build_iwatch_query_asset
from dagster_iwatch.components.models import QueryRunArgs


def _template_vars(spec: IWatchQuerySpec) -> Mapping[str, Any]:
    return {"data": spec, "query_id": spec.query_id}


class QueryScaffoldParams(BaseModel):
    """``dg scaffold defs dagster_iwatch.IWatchQueryComponent <path> --query-id 15``."""

    query_id: int = 1


class QueryScaffolder(dg.Scaffolder[QueryScaffoldParams]):
    """Writes a ``defs.yaml`` for one query."""

    @classmethod
    def get_scaffold_params(cls) -> type[QueryScaffoldParams]:
        """The options ``dg scaffold defs`` accepts."""
        return QueryScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[QueryScaffoldParams]) -> None:
        """Write the component's YAML."""
        dg.scaffold_component(request, {"query_id": request.params.query_id, "parameters": {}})


@dg.scaffold_with(QueryScaffolder)
@dataclass(kw_only=True)
class IWatchQueryComponent(dg.Component, QueryRunArgs):
    """One saved query as an asset that runs it and stores the typed result as Parquet (no HTTP call at load).

    How it runs (parameters, partitions, max_age, mode, checks, group and pool) are the fields of
    :class:`~dagster_iwatch.components.models.QueryRunArgs`.

    Attributes:
        query_id: The saved query's id.
        key: The asset key (``a/b``; default ``iwatch/<snake-case name>`` or ``iwatch/query_<id>``).
        name: The query's name, for the default key and description.
        description: The asset's description.
        owners, tags, kinds, deps: As on an asset spec.
        resource_key: The key of the ``IWatchResource`` the asset uses.
        translation: Asset attributes to override, templated with ``{{ data }}`` (the query spec) and
            ``{{ query_id }}``.
    """

    query_id: int
    key: str | None = None
    name: str | None = None
    description: str | None = None
    owners: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)
    kinds: Sequence[str] = tuple(sorted(DEFAULT_KINDS))
    deps: Sequence[str] = ()
    resource_key: str = "iwatch"
    translation: Annotated[
        TranslationFn[IWatchQuerySpec] | None, TranslationFnResolver[IWatchQuerySpec](_template_vars)
    ] = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The query's asset."""
        spec = IWatchQuerySpec(
            query_id=self.query_id,
            key=dg.AssetKey.from_user_string(self.key) if self.key else None,
            name=self.name,
            description=self.description,
            owners=tuple(self.owners),
            tags=dict(self.tags),
            kinds=frozenset(self.kinds),
            deps=[dg.AssetKey.from_user_string(d) for d in self.deps],
            **self.run_fields(),
        )
        translation = self.translation
        translator = (lambda s, a: translation(a, s)) if translation else None
        return dg.Definitions(
            assets=[build_iwatch_query_asset(spec, translator=translator, resource_key=self.resource_key)]
        )
