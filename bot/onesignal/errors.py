"""Every error the OneSignal client raises, and the one table mapping HTTP status to error.

The hierarchy, which callers catch from the most to the least specific:

* OneSignalError
  + InvalidRequest                 - refused before sending (bad body, no org key); a ValueError
  + OneSignalTransportError        - no HTTP answer: the request may or may not have run
  | + OneSignalTimeout             - connect, read, write or pool timeout
  | + OneSignalConnectError        - refused, reset, dropped mid-answer, TLS failure
  + OneSignalAPIError              - OneSignal answered: `status`, `errors`, `reference`, `body`
    + BadRequest                   - 400 (and 422): the request is wrong; fix it, don't retry
    + Unauthorized                 - 401
    + Forbidden                    - 403: the key is wrong for this app
    + NotFound                     - 404: unknown app, notification, user...
    + Conflict                     - 409
    + RateLimited                  - 429: `retry_after` seconds, when OneSignal said
    + ServerError                  - 5xx
    + NothingSent                  - 200 with an empty notification id, or none: nothing sent
    + UnexpectedResponse           - 2xx whose body is not what the operation returns

No text in here ever contains an API key: messages are built from the method, the path
and OneSignal's `errors`, and the client scrubs its own keys out of those before raising.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "NothingSent",
    "OneSignalAPIError",
    "OneSignalConnectError",
    "OneSignalError",
    "OneSignalTimeout",
    "OneSignalTransportError",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "UnexpectedResponse",
    "error_for_status",
    "normalize_errors",
]


class OneSignalError(Exception):
    """Root of every error raised by `bot.onesignal`."""


class InvalidRequest(OneSignalError, ValueError):
    """The call was refused before anything was sent (bad body, missing organization key)."""


class OneSignalTransportError(OneSignalError):
    """No HTTP answer came back; whether OneSignal acted on the request is unknown."""


class OneSignalTimeout(OneSignalTransportError):
    """A connect, read, write or pool timeout."""


class OneSignalConnectError(OneSignalTransportError):
    """The connection failed or was dropped before a complete answer arrived."""


class OneSignalAPIError(OneSignalError):
    """OneSignal answered with an error.

    Attributes:
        status: the HTTP status code.
        errors: OneSignal's `errors`, normalised to a list of readable strings whatever shape
            it came in (a string, a list of strings or of `{code, title}` objects, a map).
        reference: OneSignal's `reference` field when present (documentation links).
        body: the decoded JSON body (or the text when it was not JSON).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        errors: list[str] | None = None,
        reference: Any = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []
        self.reference = reference
        self.body = body


class BadRequest(OneSignalAPIError):
    """400 (or 422): OneSignal refused the request as malformed."""


class Unauthorized(OneSignalAPIError):
    """401: no usable credentials."""


class Forbidden(OneSignalAPIError):
    """403: the API key is not valid for this app or organization."""


class NotFound(OneSignalAPIError):
    """404: the app, notification, user, segment or template does not exist."""


class Conflict(OneSignalAPIError):
    """409: the change conflicts with the current state (e.g. an alias already taken)."""


class RateLimited(OneSignalAPIError):
    """429: too many requests; `retry_after` is OneSignal's wait in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(OneSignalAPIError):
    """5xx: OneSignal failed; the request may or may not have run."""


class NothingSent(OneSignalAPIError):
    """200 with an empty notification id, or without one: nothing was sent.

    `reason` is OneSignal's explanation, e.g. "All included players are not subscribed"
    or "invalid_aliases: external_id: u1, u2".
    """

    @property
    def reason(self) -> str:
        """OneSignal's explanation in one line."""
        return "; ".join(self.errors) or "no recipient matched"


class UnexpectedResponse(OneSignalAPIError):
    """A 2xx answer whose body is not what the operation returns."""


# One table from status to class (aiontfy's `raise_http_error` in spirit).
_STATUS_CLASSES: dict[int, type[OneSignalAPIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: BadRequest,
    429: RateLimited,
}


def error_class(status: int) -> type[OneSignalAPIError]:
    """The error class for an HTTP status that is not a success."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, OneSignalAPIError)


def error_for_status(
    status: int,
    *,
    operation: str,
    body: Any,
    retry_after: float | None = None,
) -> OneSignalAPIError:
    """Build the error for a failed answer; `body` is the decoded JSON (or text)."""
    cls = error_class(status)
    errors = normalize_errors(body.get("errors") if isinstance(body, Mapping) else body)
    reference = body.get("reference") if isinstance(body, Mapping) else None
    detail = "; ".join(errors) or "no details"
    message = f"OneSignal {operation} failed with HTTP {status}: {detail}"
    kwargs: dict[str, Any] = {"status": status, "errors": errors, "reference": reference}
    if cls is RateLimited:
        kwargs["retry_after"] = retry_after
    return cls(message, body=body, **kwargs)


LISTED: Final = 20
"""Items of a list OneSignal sent back (the ids it did not find...) named in a line; a longer
list is counted, so one answer about 2,000 unknown ids stays one readable line."""


def normalize_errors(raw: Any) -> list[str]:
    """Turn OneSignal's `errors`, in any of the shapes it takes, into readable lines.

    Shapes seen: `"text"`, `["text", ...]`, `[{"code": "user-2", "title": "..."}]`,
    `{"invalid_aliases": {"external_id": ["a", "b"]}}`, `{"invalid_player_ids": ["x"]}`.
    A list of more than LISTED ids is counted: `invalid_aliases: external_id: 2,000 ids were
    not found; first 20: a, b, …`.
    """
    if raw is None or raw == "" or raw == [] or raw == {}:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, Mapping):
        return [
            f"{key}: {_flatten(value, missing=str(key).startswith('invalid_'))}"
            for key, value in raw.items()
        ]
    if isinstance(raw, list):
        return [_one_error(item) for item in raw]
    return [_flatten(raw)]


def _one_error(item: Any) -> str:
    if isinstance(item, Mapping):
        title = item.get("title") or item.get("message") or item.get("detail")
        code = item.get("code")
        if title and code:
            return f"{title} ({code})"
        if title or code:
            return str(title or code)
    return _flatten(item)


def _flatten(value: Any, *, missing: bool = False) -> str:
    """`value` in one line; `missing`: a list in it names ids OneSignal did not find."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        shown = ", ".join(_flatten(v) for v in value[:LISTED])
        if len(value) <= LISTED:
            return shown
        what = "ids were not found" if missing else "items"
        return f"{len(value):,} {what}; first {LISTED}: {shown}"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_flatten(v, missing=missing)}" for k, v in value.items())
    return json.dumps(value)
