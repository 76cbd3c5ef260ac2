"""Answers of the local server independent of HTTP: Redash's messages, replies, errors and callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster_iwatch.errors import IWatchError

MSG_NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
MSG_LOGIN = "Couldn't find resource. Please login and try again."
MSG_FORBIDDEN = (
    "You don't have the permission to access the requested resource. It is either read-protected or not "
    "readable by the server."
)
MSG_EDIT_FORBIDDEN = "You don't have permission to edit this resource."
MSG_BAD_REQUEST = "The browser (or proxy) sent a request that this server could not understand."
MSG_TOO_LARGE = "The data value transmitted exceeds the capacity limit."
MSG_METHOD = "The method is not allowed for the requested URL."
MSG_CONFLICT = (
    "A conflict happened while processing the request. The resource might have been modified while the "
    "request was being processed."
)
MSG_INTERNAL = "Internal Server Error"
MSG_NO_CACHED = "No cached result found for this query."
MSG_UNSAFE = (
    "This query contains potentially unsafe parameters and cannot be executed on a shared dashboard or an "
    "embedded visualization."
)

FLAVORS = ("inverse-watch", "redash")

_AVATAR = "https://www.gravatar.com/avatar/00000000000000000000000000000000?s=40&d=identicon"
# Dashboards and widgets carry the short form of the user; queries carry the full one (as captured).
USER_SHORT: dict[str, Any] = {"id": 1, "name": "Admin", "email": "admin@localhost", "profile_image_url": _AVATAR}
USER_FULL: dict[str, Any] = {
    **USER_SHORT,
    "groups": [1, 2],
    "updated_at": "2024-01-01T00:00:00.000Z",
    "created_at": "2024-01-01T00:00:00.000Z",
    "disabled_at": None,
    "is_disabled": False,
    "active_at": "2024-01-01T00:00:00Z",
    "is_invitation_pending": False,
    "is_email_verified": True,
    "auth_type": "password",
}


class LocalServerError(IWatchError):
    """The local server cannot start: an unusable data folder, a corrupt metadata file, a bad option."""


@dataclass
class Reply:
    """An HTTP answer: status, body (JSON-serializable, or ``str``/``bytes`` with its own content type), headers."""

    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class HTTPError(Exception):
    """Abort the request with this reply."""

    def __init__(self, status: int, message: str | None = None, body: Any = None) -> None:
        super().__init__(message or str(status))
        self.reply = Reply(status, body if body is not None else {"message": message or MSG_INTERNAL})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin user (user key) or one query (its query key)."""

    query_id: int | None = None

    @property
    def is_user(self) -> bool:
        """Whether this is the user key, which may do everything."""
        return self.query_id is None


def not_found() -> HTTPError:
    """Flask's generic 404."""
    return HTTPError(404, MSG_NOT_FOUND)


def login_required() -> HTTPError:
    """What Redash answers to a missing or wrong key, or a query key used out of its scope."""
    return HTTPError(404, MSG_LOGIN)


def internal_error() -> HTTPError:
    """Redash's bare 500."""
    return HTTPError(500, MSG_INTERNAL)


def bad_request(message: str = MSG_BAD_REQUEST) -> HTTPError:
    """A 400 with Flask's message unless told otherwise."""
    return HTTPError(400, message)


def to_int(text: str) -> int:
    """Parse an id from a URL; Redash answers a bare 500 to a non-integer id."""
    if not text.isdigit():
        raise internal_error()
    return int(text)
