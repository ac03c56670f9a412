"""Standalone async client of OneSignal's REST API (knows nothing of Slack or the database)."""

from bot.onesignal.batching import MAX_IDS_PER_REQUEST, BatchResult
from bot.onesignal.client import DEFAULT_BASE_URL, OneSignalClient, make_http_client
from bot.onesignal.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    NothingSent,
    OneSignalAPIError,
    OneSignalConnectError,
    OneSignalError,
    OneSignalTimeout,
    OneSignalTransportError,
    RateLimited,
    ServerError,
    Unauthorized,
    UnexpectedResponse,
)
from bot.onesignal.models import (
    EstimateRecipientsRequest,
    NotificationCreated,
    NotificationDetails,
    NotificationRequest,
    RecipientEstimate,
    Segment,
    SegmentPage,
    User,
)
from bot.onesignal.retry import RetryPolicy
from bot.onesignal.transport import Exchange, ExchangeObserver, PooledHttpClient

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_IDS_PER_REQUEST",
    "BadRequest",
    "BatchResult",
    "Conflict",
    "EstimateRecipientsRequest",
    "Exchange",
    "ExchangeObserver",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "NothingSent",
    "NotificationCreated",
    "NotificationDetails",
    "NotificationRequest",
    "OneSignalAPIError",
    "OneSignalClient",
    "OneSignalConnectError",
    "OneSignalError",
    "OneSignalTimeout",
    "OneSignalTransportError",
    "PooledHttpClient",
    "RateLimited",
    "RecipientEstimate",
    "RetryPolicy",
    "Segment",
    "SegmentPage",
    "ServerError",
    "Unauthorized",
    "UnexpectedResponse",
    "User",
    "make_http_client",
]
