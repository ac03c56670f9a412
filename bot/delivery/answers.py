"""What OneSignal's answers to a delivery mean: a sentence for people, whether trying again may
help, and whether a failed call may have created the notification anyway.

A call that got no usable answer (no answer in time, a dropped connection, a 5xx, a 2xx
PushOps could not read) leaves its outcome unknown: OneSignal may have created the
notification. Such a send is never called "not sent" until OneSignal has been asked
(`bot.delivery.attempt`); `Absent` is OneSignal's answer that it has nothing.
"""

from __future__ import annotations

from bot.onesignal import (
    InvalidRequest,
    NothingSent,
    OneSignalAPIError,
    OneSignalError,
    OneSignalTimeout,
    OneSignalTransportError,
    RateLimited,
    ServerError,
    UnexpectedResponse,
)


class Absent(OneSignalError):
    """A call failed without a usable answer, and OneSignal, asked afterwards for the
    notification by its name, has none: nothing was sent. `cause` is how the call failed."""

    def __init__(self, cause: OneSignalError) -> None:
        super().__init__(f"{cause} (OneSignal has no such notification)")
        self.cause = cause


def outcome_unknown(error: BaseException) -> bool:
    """Whether OneSignal may have created the notification although the call failed."""
    return isinstance(error, OneSignalTransportError | ServerError | UnexpectedResponse)


def is_passing(error: BaseException) -> bool:
    """Whether trying again later (same key) may succeed where this failed."""
    return outcome_unknown(error) or isinstance(error, RateLimited | Absent)


def explain(error: BaseException) -> str:
    """One sentence on what OneSignal said (no key ever appears in these texts)."""
    if isinstance(error, Absent):
        return explain(error.cause)  # whoever ends the send says OneSignal has nothing
    if isinstance(error, NothingSent):
        return f"OneSignal sent it to nobody: {error.reason}."
    if isinstance(error, RateLimited):
        return "OneSignal's rate limit was reached (HTTP 429)."
    if isinstance(error, UnexpectedResponse):
        return f"OneSignal gave an answer PushOps could not read (HTTP {error.status})."
    if isinstance(error, OneSignalAPIError):
        detail = "; ".join(error.errors) or "no details given"
        verb = "failed" if isinstance(error, ServerError) else "refused it"
        return f"OneSignal {verb} (HTTP {error.status}): {detail}."
    if isinstance(error, OneSignalTimeout):
        return "OneSignal did not answer in time."
    if isinstance(error, OneSignalTransportError):
        return "OneSignal could not be reached."
    if isinstance(error, InvalidRequest):
        return f"The notification was refused before sending: {error}."
    return f"Delivery failed ({type(error).__name__})."
