"""The Dagster resource that hands out configured :class:`~dagster_iwatch.client.IWatchClient` objects."""

from __future__ import annotations

import contextvars
import warnings
from typing import Any

import dagster as dg
from pydantic import Field

from dagster_iwatch._args import validate_base_url
from dagster_iwatch._config import Timeout, positive_seconds
from dagster_iwatch._transport import check_key
from dagster_iwatch.client import IWatchClient
from dagster_iwatch.errors import ConfigError, IWatchSecurityWarning

__all__ = ["IWatchResource"]


class IWatchResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Connection settings for an Inverse Watch (or Redash) server.

    Keep keys out of code: read them from the environment with ``dg.EnvVar`` so they are resolved at run
    time and never stored in the run's config. The resource's ``repr`` shows no key.

    Example:
        .. code-block:: python

            import dagster as dg
            from dagster_iwatch import IWatchResource

            iwatch = IWatchResource(
                base_url="https://app.inverse.watch",
                api_key=dg.EnvVar("IWATCH_API_KEY"),
            )

            @dg.asset
            def eth_prices(iwatch: IWatchResource) -> None:
                with iwatch.get_client() as client:
                    table = client.execute(15, max_age=3600).to_arrow()
    """

    base_url: str = Field(
        default="https://app.inverse.watch",
        description="The server's URL; a path prefix (https://host/<org>) is kept.",
    )
    api_key: str | None = Field(
        default=None,
        repr=False,
        description=(
            "A user API key (Settings > Account) or a query API key. A user key is needed for listing, editing "
            "and dashboards. Use dg.EnvVar('IWATCH_API_KEY')."
        ),
    )
    query_api_keys: dict[str, str] = Field(
        default={},
        repr=False,
        description=(
            "Query API keys by query id (as a string, e.g. {'15': ...}); a query's calls use its own key "
            "instead of the user key. A query key cannot run queries with text parameters."
        ),
    )
    request_timeout: float = Field(
        default=60, description="Seconds to wait for each read of an HTTP answer before retrying or failing."
    )
    connect_timeout: float = Field(default=10, description="Seconds to wait for a connection to the server.")
    job_timeout: float = Field(
        default=1800,
        description=(
            "Deadline in seconds of each query run (submit, polls, result); at the deadline the job is cancelled."
        ),
    )
    max_poll_interval: float = Field(
        default=1,
        description=(
            "Longest wait, in seconds, between two polls of a running job (the first polls come within "
            "milliseconds; see dagster_iwatch.poll)."
        ),
    )
    max_retries: int = Field(
        default=3,
        description=(
            "Retries of reads after connection errors, bodies cut off and HTTP 429/500/502/503/504 (query runs "
            "are never re-sent once the server may have received them)."
        ),
    )
    verify_ssl: bool = Field(
        default=True,
        description="Verify the server's TLS certificate (warned once when off). Prefer ca_bundle to turning it off.",
    )
    ca_bundle: str | None = Field(
        default=None,
        description=(
            "Path of a CA bundle (file or folder) to verify the server's certificate against, for a private "
            "certificate authority; it applies whatever REQUESTS_CA_BUNDLE says."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The instance's address for people, used in links (iwatch/query_url) when it differs from base_url "
            "(an internal proxy, a temporary local server); base_url by default."
        ),
    )
    pool_size: int = Field(
        default=32, description="HTTP connections kept open to the server: at least the threads sharing a client."
    )
    max_result_bytes: int | None = Field(
        default=None,
        description="Refuse query results whose body is larger than this many bytes (no limit when unset).",
    )

    def __init__(self, **data: Any) -> None:
        # Literal values are checked here, at definition time; EnvVar values when a run resolves them.
        for name in ("base_url", "public_url"):
            if type(data.get(name)) is str:
                validate_base_url(data[name], name)
        literal = [name for name in ("api_key",) if type(data.get(name)) is str]
        literal += ["query_api_keys"] * any(type(v) is str for v in (data.get("query_api_keys") or {}).values())
        for name in literal:
            if name == "api_key":
                check_key("api_key", data[name])
            if not _RESOLVING.get():
                _warn_literal_key(name)
        super().__init__(**data)

    def _with_updated_values(self, values: Any) -> Any:
        # Dagster rebuilds the resource with EnvVars resolved when a run starts: those are not literals.
        token = _RESOLVING.set(True)
        try:
            return super()._with_updated_values(values)
        finally:
            _RESOLVING.reset(token)

    def __reduce__(self) -> tuple[Any, ...]:
        # Dagster's internal state holds config schemas that cannot be pickled; the fields are enough.
        values = {name: self.__dict__[name] for name in type(self).model_fields if name in self.__dict__}
        return (_rebuild, (type(self), values))

    def get_client(self) -> IWatchClient:
        """A new client with these settings, logging to Dagster's logger.

        Returns:
            An :class:`IWatchClient`; close it (or use it in a ``with`` block) when done.

        Raises:
            ConfigError: A setting is invalid.
        """
        return IWatchClient(
            self.base_url,
            self.api_key,
            query_api_keys=self.query_api_keys,
            timeout=Timeout(
                positive_seconds("connect_timeout", self.connect_timeout),
                positive_seconds("request_timeout", self.request_timeout),
            ),
            job_timeout=self.job_timeout,
            max_poll_interval=self.max_poll_interval,
            poll_interval=min(0.005, self.max_poll_interval),
            max_retries=self.max_retries,
            verify=self._verify(),
            max_result_bytes=self.max_result_bytes,
            pool_size=self.pool_size,
            public_url=self.public_url,
            logger=dg.get_dagster_logger("dagster_iwatch"),
        )

    def _verify(self) -> bool | str:
        if self.ca_bundle is None:
            return self.verify_ssl
        if not self.verify_ssl:
            raise ConfigError("ca_bundle is set but verify_ssl is False: keep verify_ssl on to use the CA bundle")
        return self.ca_bundle


_RESOLVING: contextvars.ContextVar[bool] = contextvars.ContextVar("iwatch_resolving", default=False)
_WARNED: set[str] = set()


def _warn_literal_key(name: str) -> None:
    """Warn once per process and field that a key is written into the definitions."""
    if name in _WARNED:
        return
    _WARNED.add(name)
    example = 'dg.EnvVar("IWATCH_API_KEY")' if name == "api_key" else '{"15": dg.EnvVar("IWATCH_QUERY_15_KEY")}'
    warnings.warn(
        f"IWatchResource({name}=...) was given a literal key: Dagster stores it in the run storage as part of "
        f"the resource config. Read it from the environment instead: {name}={example}.",
        IWatchSecurityWarning,
        stacklevel=4,
    )


def _rebuild(cls: type[IWatchResource], values: dict[str, Any]) -> IWatchResource:
    """Recreate a resource from its field values (the unpickling half of ``__reduce__``)."""
    token = _RESOLVING.set(True)
    try:
        return cls(**values)
    finally:
        _RESOLVING.reset(token)
