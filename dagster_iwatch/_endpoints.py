"""What every group of endpoints shares: the keys, which key a call sends, and JSON calls and pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dagster_iwatch import _wire
from dagster_iwatch._args import check_id
from dagster_iwatch._config import ClientSettings
from dagster_iwatch._transport import Credential, Transport
from dagster_iwatch.errors import ConfigError

_USER_HINT = "This call needs a user API key"


class Endpoints:
    """The state and helpers the endpoint groups of :class:`~dagster_iwatch.client.IWatchClient` use."""

    settings: ClientSettings
    _transport: Transport
    _api_key: str | None
    _query_keys: dict[int, str]
    _user_key_queries: set[int]

    def use_user_key_for(self, query_id: int) -> None:
        """Send this query's calls with ``api_key`` even when it has its own key (which may not run it).

        Raises:
            ConfigError: There is no ``api_key``.
        """
        qid = check_id(query_id, "query_id")
        if qid not in self._query_keys:
            return
        if self._api_key is None:
            raise ConfigError(
                f"Query {qid} has text parameters, which a query API key may not run; "
                "use a user API key (api_key) for it"
            )
        self._user_key_queries.add(qid)

    def _user(self) -> Credential:
        if self._api_key is None:
            raise ConfigError(f"{_USER_HINT}: pass api_key (e.g. from IWATCH_API_KEY)")
        return Credential(self._api_key, _USER_HINT)

    def _for_query(self, query_id: int) -> Credential:
        hint = f"This call needs the user key or query {query_id}'s API key"
        key = self._query_keys.get(query_id)
        if key and query_id not in self._user_key_queries:
            return Credential(key, hint)
        if self._api_key is not None:
            return Credential(self._api_key, hint)
        raise ConfigError(
            f"Query {query_id}: no API key for it: pass api_key (a user or query key) or query_api_keys[{query_id}]"
        )

    def _result_route(self, result_id: int, query_id: int | None, suffix: str) -> tuple[str, Credential]:
        rid = check_id(result_id, "result_id")
        if query_id is None:
            return f"/api/query_results/{rid}" + ("" if suffix == "json" else f".{suffix}"), self._user()
        qid = check_id(query_id, "query_id")
        return f"/api/queries/{qid}/results/{rid}.{suffix}", self._for_query(qid)

    def _pages(self, path: str, params: dict[str, Any], credential: Credential) -> Iterator[Mapping[str, Any]]:
        page = 1
        while True:
            results, count, size = _wire.parse_page(
                self._json("GET", path, credential, params={**params, "page": page}), f"GET {path}"
            )
            yield from results
            if not results or count is None or page * (size or params["page_size"]) >= count:
                return
            page += 1

    def _json(
        self,
        method: str,
        path: str,
        credential: Credential,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        body = self._transport.request(
            method, path, credential, params=params, json_body=json_body, idempotent=idempotent
        )
        return _wire.decode(body, f"{method} {path}")
