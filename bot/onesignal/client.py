"""The async OneSignal REST client: one method per operation, retries, typed errors."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar
from urllib.parse import quote

import aiohttp
import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from bot.onesignal import models as m
from bot.onesignal.batching import (
    MAX_IDS_PER_REQUEST,
    BatchResult,
    batch_key,
    chunk,
    unique_ids,
)
from bot.onesignal.errors import (
    InvalidRequest,
    NothingSent,
    OneSignalAPIError,
    OneSignalConnectError,
    OneSignalError,
    OneSignalTimeout,
    OneSignalTransportError,
    UnexpectedResponse,
    error_for_status,
    normalize_errors,
)
from bot.onesignal.retry import RetryPolicy
from bot.onesignal.transport import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    Answer,
    Channel,
    is_timeout,
    make_http_client,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "OneSignalClient",
    "make_http_client",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.onesignal.com"

T = TypeVar("T")
Body = BaseModel | Mapping[str, Any]
RequestT = TypeVar("RequestT", bound=m.RequestModel)


class _Op(NamedTuple):
    """One REST operation: how it is called and whether repeating it is harmless."""

    method: str
    path: str
    org_key: bool = False
    repeatable: bool = False


class _Failure(NamedTuple):
    """A failed exchange: the error to raise, and whether (and when) to try again."""

    error: OneSignalError
    may_retry: bool
    retry_after: float | None = None


def _read(path: str, *, org_key: bool = False) -> _Op:
    return _Op("GET", path, org_key, repeatable=True)


# Every operation in one table. `repeatable`: reads, the recipient estimate, and
# create_notification, which always carries an idempotency key (OneSignal replays the
# first answer for a repeated key instead of sending twice).
_OPS: dict[str, _Op] = {
    "begin_live_activity": _Op("POST", "/apps/{app_id}/live_activities/{activity_id}/token"),
    "cancel_notification": _Op("DELETE", "/notifications/{notification_id}"),
    "create_app": _Op("POST", "/apps", org_key=True),
    "create_notification": _Op("POST", "/notifications", repeatable=True),
    "create_player": _Op("POST", "/players"),
    "create_segments": _Op("POST", "/apps/{app_id}/segments"),
    "create_subscription": _Op(
        "POST", "/apps/{app_id}/users/by/{alias_label}/{alias_id}/subscriptions"
    ),
    "create_user": _Op("POST", "/apps/{app_id}/users"),
    "delete_alias": _Op(
        "DELETE",
        "/apps/{app_id}/users/by/{alias_label}/{alias_id}/identity/{alias_label_to_delete}",
    ),
    "delete_player": _Op("DELETE", "/players/{player_id}"),
    "delete_segments": _Op("DELETE", "/apps/{app_id}/segments/{segment_id}"),
    "delete_subscription": _Op("DELETE", "/apps/{app_id}/subscriptions/{subscription_id}"),
    "delete_user": _Op("DELETE", "/apps/{app_id}/users/by/{alias_label}/{alias_id}"),
    "end_live_activity": _Op(
        "DELETE", "/apps/{app_id}/live_activities/{activity_id}/token/{subscription_id}"
    ),
    "export_events": _Op("POST", "/notifications/{notification_id}/export_events"),
    "export_players": _Op("POST", "/players/csv_export"),
    "fetch_aliases": _read("/apps/{app_id}/subscriptions/{subscription_id}/user/identity"),
    "fetch_user": _read("/apps/{app_id}/users/by/{alias_label}/{alias_id}"),
    "fetch_user_identity": _read("/apps/{app_id}/users/by/{alias_label}/{alias_id}/identity"),
    "get_app": _read("/apps/{app_id}", org_key=True),
    "get_apps": _read("/apps", org_key=True),
    "get_eligible_iams": _read("/apps/{app_id}/subscriptions/{subscription_id}/iams"),
    "get_notification": _read("/notifications/{notification_id}"),
    "get_notification_history": _Op("POST", "/notifications/{notification_id}/history"),
    "get_notifications": _read("/notifications"),
    "get_outcomes": _read("/apps/{app_id}/outcomes"),
    "get_player": _read("/players/{player_id}"),
    "get_players": _read("/players"),
    "identify_user_by_alias": _Op(
        "PATCH", "/apps/{app_id}/users/by/{alias_label}/{alias_id}/identity"
    ),
    "identify_user_by_subscription_id": _Op(
        "PATCH", "/apps/{app_id}/subscriptions/{subscription_id}/user/identity"
    ),
    "transfer_subscription": _Op("PATCH", "/apps/{app_id}/subscriptions/{subscription_id}/owner"),
    "update_app": _Op("PUT", "/apps/{app_id}", org_key=True),
    "update_live_activity": _Op(
        "POST", "/apps/{app_id}/live_activities/{activity_id}/notifications"
    ),
    "update_player": _Op("PUT", "/players/{player_id}"),
    "update_player_tags": _Op("PUT", "/apps/{app_id}/users/{external_user_id}"),
    "update_subscription": _Op("PATCH", "/apps/{app_id}/subscriptions/{subscription_id}"),
    "update_user": _Op("PATCH", "/apps/{app_id}/users/by/{alias_label}/{alias_id}"),
    # From the current API (openapi 5.12), for the compose form and its preview.
    "get_segments": _read("/apps/{app_id}/segments"),
    "view_templates": _read("/templates"),
    "view_template": _read("/templates/{template_id}"),
    "estimate_notification_recipients": _Op(
        "POST", "/notifications/count-unsaved", repeatable=True
    ),
}

_APPS = TypeAdapter(list[m.AppInfo])


class OneSignalClient:
    """Async client of OneSignal's REST API, one method per operation of the official SDK.

    Method names and positional parameters are those of `onesignal-python-api`
    (`cancel_notification(app_id, notification_id)`, `fetch_user(app_id, alias_label,
    alias_id)`...); optional parameters are keyword-only. Bodies take the request model
    or a plain dict. Errors are `bot.onesignal.errors` classes.

    Use it as `async with OneSignalClient(rest_api_key=...) as client:`. To share one
    connection pool among many apps, pass the same `http_client=make_http_client()` to
    each; an injected client is never closed here.

    Retries (with jitter, at most `max_retries`): 429 for every operation, since OneSignal
    refused it before doing anything; 5xx and transport errors only for operations safe to
    repeat: reads, the recipient estimate, and `create_notification`, which always sends
    an `idempotency_key` (one is generated when the caller gives none).

    How long one call may take: each HTTP exchange waits at most `timeout` (to connect,
    then for each read of the answer); a call makes at most `1 + max_retries` exchanges,
    with a wait between two of them (a jittered backoff under `retry_max_delay`, or
    OneSignal's Retry-After when it is no longer than that). `timeout` None takes the
    injected `http_client`'s, so every client on one shared pool waits as long as the pool
    was set up to; a client making its own pool uses `DEFAULT_TIMEOUT`.
    """

    def __init__(
        self,
        *,
        rest_api_key: str | SecretStr,
        organization_api_key: str | SecretStr | None = None,
        base_url: str = DEFAULT_BASE_URL,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
    ) -> None:
        self._rest_key = _secret("rest_api_key", rest_api_key)
        self._org_key = (
            None
            if organization_api_key is None
            else _secret("organization_api_key", organization_api_key)
        )
        self.base_url = base_url.rstrip("/")
        self.retry = RetryPolicy(max_retries, retry_base_delay, retry_max_delay)
        self._owns_http = http_client is None
        if http_client is None:
            http_client = make_http_client(timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        self._http = http_client
        if timeout is None:
            timeout = http_client.timeout
        timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._channel = Channel(self._http, timeout)
        self._headers = _Headers(self._rest_key, self._org_key)

    def __repr__(self) -> str:
        org = "set" if self._org_key else "unset"
        return f"OneSignalClient(base_url={self.base_url!r}, organization_api_key={org})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, unless it was injected."""
        if self._owns_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ notifications

    async def create_notification(
        self, notification: m.NotificationRequest | Body
    ) -> m.NotificationCreated:
        """Send (or schedule) a notification: `POST /notifications`.

        An `idempotency_key` is added when absent, so retries cannot send twice. Raises
        `NothingSent` when OneSignal answers 200 with an empty id or none (nothing created).
        """
        model = _as(m.NotificationRequest, notification)
        if model.idempotency_key is None:
            model = model.model_copy(update={"idempotency_key": str(uuid.uuid4())})
        created = await self._call(
            "create_notification", m.NotificationCreated.model_validate_json, body=model
        )
        if not created.id:
            raise _nothing_sent(created)
        return created

    async def cancel_notification(self, app_id: str, notification_id: str) -> m.Success:
        """Stop a scheduled or outgoing notification: `DELETE /notifications/{id}`."""
        return await self._call(
            "cancel_notification",
            m.Success.model_validate_json,
            path={"notification_id": notification_id},
            query={"app_id": app_id},
        )

    async def get_notification(self, app_id: str, notification_id: str) -> m.NotificationDetails:
        """One notification with its delivery counters: `GET /notifications/{id}`."""
        return await self._call(
            "get_notification",
            m.NotificationDetails.model_validate_json,
            path={"notification_id": notification_id},
            query={"app_id": app_id},
        )

    async def get_notifications(
        self,
        app_id: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        kind: int | None = None,
    ) -> m.NotificationPage:
        """A page of the app's notifications, newest first: `GET /notifications`."""
        return await self._call(
            "get_notifications",
            m.NotificationPage.model_validate_json,
            query={"app_id": app_id, "limit": limit, "offset": offset, "kind": kind},
        )

    async def get_notification_history(
        self,
        notification_id: str,
        get_notification_request_body: m.NotificationHistoryRequest | Body,
    ) -> m.NotificationHistory:
        """Ask for a CSV of who was sent or clicked a notification."""
        model = _as(m.NotificationHistoryRequest, get_notification_request_body)
        # openapi 1.2.2 requires the notification id in the body as well as in the path.
        body = {"id": notification_id, **_dump(model)}
        return await self._call(
            "get_notification_history",
            m.NotificationHistory.model_validate_json,
            path={"notification_id": notification_id},
            body=body,
        )

    async def export_events(self, notification_id: str, app_id: str) -> m.CsvExport:
        """Ask for a CSV of a notification's events."""
        return await self._call(
            "export_events",
            m.CsvExport.model_validate_json,
            path={"notification_id": notification_id},
            query={"app_id": app_id},
        )

    async def estimate_notification_recipients(
        self, request: m.EstimateRecipientsRequest | Body
    ) -> m.RecipientEstimate:
        """How many people an audience reaches now: `POST /notifications/count-unsaved`."""
        return await self._call(
            "estimate_notification_recipients",
            m.RecipientEstimate.model_validate_json,
            body=_as(m.EstimateRecipientsRequest, request),
        )

    async def send_to_external_ids(
        self,
        notification: m.NotificationRequest | Body,
        external_ids: Iterable[str],
        *,
        idempotency_key: str,
        batch_size: int = MAX_IDS_PER_REQUEST,
        batch_name: Callable[[int, int], str] | None = None,
    ) -> list[BatchResult]:
        """Send one notification to any number of external ids, in batches of <= 2,000.

        `notification` holds the message (no audience of its own). Duplicate ids are
        dropped. Each batch targets `include_aliases={"external_id": [...]}` with its own
        idempotency key derived from `idempotency_key` (see `batching.batch_key`), so
        calling again after a failure re-sends only what OneSignal has not seen. Batches
        run in order; each one's outcome, success or error, is in the returned list.
        `batch_name(index, count)`, when given, is the `name` of each batch, so that each
        can be told apart in OneSignal's listing.
        """
        template = _as(m.NotificationRequest, notification)
        _check_no_audience(template)
        batches = chunk(unique_ids(external_ids), batch_size)
        results = []
        for index, ids in enumerate(batches):
            key = batch_key(idempotency_key, index, len(batches))
            name = batch_name(index, len(batches)) if batch_name is not None else template.name
            results.append(await self._send_batch(template, index, ids, key, name))
        return results

    async def _send_batch(
        self,
        template: m.NotificationRequest,
        index: int,
        ids: list[str],
        key: str,
        name: str | None,
    ) -> BatchResult:
        update: dict[str, Any] = {
            "include_aliases": {"external_id": ids},
            "target_channel": template.target_channel or "push",
            "idempotency_key": key,
        }
        if name is not None:
            update["name"] = name
        batch = template.model_copy(update=update)
        try:
            created = await self.create_notification(batch)
        except OneSignalError as exc:
            logger.warning("OneSignal batch %d (%d ids) failed: %s", index, len(ids), exc)
            return BatchResult(index, key, len(ids), error=exc)
        return BatchResult(index, key, len(ids), created.id, created.recipients)

    # ------------------------------------------------------------- segments, templates

    async def get_segments(self, app_id: str, offset: int = 0, limit: int = 300) -> m.SegmentPage:
        """The app's segments, oldest first: `GET /apps/{app_id}/segments`."""
        return await self._call(
            "get_segments",
            m.SegmentPage.model_validate_json,
            path={"app_id": app_id},
            query={"offset": offset, "limit": limit},
        )

    async def create_segments(
        self, app_id: str, *, segment: m.SegmentRequest | Body | None = None
    ) -> m.CreatedWithId:
        """Create a segment from filters: `POST /apps/{app_id}/segments`."""
        return await self._call(
            "create_segments",
            m.CreatedWithId.model_validate_json,
            path={"app_id": app_id},
            body=_as_optional(m.SegmentRequest, segment),
        )

    async def delete_segments(self, app_id: str, segment_id: str) -> m.Success:
        """Delete a segment: `DELETE /apps/{app_id}/segments/{segment_id}`."""
        return await self._call(
            "delete_segments",
            m.Success.model_validate_json,
            path={"app_id": app_id, "segment_id": segment_id},
        )

    async def view_templates(
        self,
        app_id: str,
        *,
        limit: int | None = None,
        offset: int | None = None,
        channel: m.Channel | None = None,
    ) -> m.TemplatePage:
        """The app's message templates: `GET /templates`."""
        return await self._call(
            "view_templates",
            m.TemplatePage.model_validate_json,
            query={"app_id": app_id, "limit": limit, "offset": offset, "channel": channel},
        )

    async def view_template(self, app_id: str, template_id: str) -> m.Template:
        """One message template: `GET /templates/{template_id}`."""
        return await self._call(
            "view_template",
            m.Template.model_validate_json,
            path={"template_id": template_id},
            query={"app_id": app_id},
        )

    async def get_outcomes(
        self,
        app_id: str,
        outcome_names: str,
        *,
        outcome_names2: str | None = None,
        outcome_time_range: str | None = None,
        outcome_platforms: str | None = None,
        outcome_attribution: str | None = None,
    ) -> m.Outcomes:
        """Outcome figures (`os__click.count`...): `GET /apps/{app_id}/outcomes`.

        `outcome_names2` is the SDK's name for the `outcome_names[]` parameter.
        """
        query = {
            "outcome_names": outcome_names,
            "outcome_names[]": outcome_names2,
            "outcome_time_range": outcome_time_range,
            "outcome_platforms": outcome_platforms,
            "outcome_attribution": outcome_attribution,
        }
        return await self._call(
            "get_outcomes", m.Outcomes.model_validate_json, path={"app_id": app_id}, query=query
        )

    # ------------------------------------------------------------------------- apps

    async def get_apps(self) -> list[m.AppInfo]:
        """Every app of the organization (organization key): `GET /apps`."""
        return await self._call("get_apps", _APPS.validate_json)

    async def get_app(self, app_id: str) -> m.AppInfo:
        """One app (organization key): `GET /apps/{app_id}`."""
        return await self._call("get_app", m.AppInfo.model_validate_json, path={"app_id": app_id})

    async def create_app(self, app: m.AppRequest | Body) -> m.AppInfo:
        """Create an app (organization key): `POST /apps`."""
        return await self._call(
            "create_app", m.AppInfo.model_validate_json, body=_as(m.AppRequest, app)
        )

    async def update_app(self, app_id: str, app: m.AppRequest | Body) -> m.AppInfo:
        """Change an app's settings (organization key): `PUT /apps/{app_id}`."""
        return await self._call(
            "update_app",
            m.AppInfo.model_validate_json,
            path={"app_id": app_id},
            body=_as(m.AppRequest, app),
        )

    # ------------------------------------------------------------------------ users

    async def create_user(self, app_id: str, user: m.UserRequest | Body) -> m.User:
        """Create a user with aliases and subscriptions: `POST /apps/{app_id}/users`."""
        return await self._call(
            "create_user",
            m.User.model_validate_json,
            path={"app_id": app_id},
            body=_as(m.UserRequest, user),
        )

    async def fetch_user(self, app_id: str, alias_label: str, alias_id: str) -> m.User:
        """A user by alias, e.g. `fetch_user(app_id, "external_id", "cust-4711")`."""
        return await self._call(
            "fetch_user", m.User.model_validate_json, path=_alias(app_id, alias_label, alias_id)
        )

    async def update_user(
        self,
        app_id: str,
        alias_label: str,
        alias_id: str,
        update_user_request: m.UpdateUserRequest | Body,
    ) -> m.UserPropertiesUpdate:
        """Change a user's properties (tags, language...)."""
        return await self._call(
            "update_user",
            m.UserPropertiesUpdate.model_validate_json,
            path=_alias(app_id, alias_label, alias_id),
            body=_as(m.UpdateUserRequest, update_user_request),
        )

    async def delete_user(self, app_id: str, alias_label: str, alias_id: str) -> None:
        """Delete a user and its subscriptions."""
        await self._request("delete_user", path=_alias(app_id, alias_label, alias_id))

    async def fetch_user_identity(
        self, app_id: str, alias_label: str, alias_id: str
    ) -> m.UserIdentity:
        """A user's aliases, found by one of them."""
        return await self._call(
            "fetch_user_identity",
            m.UserIdentity.model_validate_json,
            path=_alias(app_id, alias_label, alias_id),
        )

    async def identify_user_by_alias(
        self,
        app_id: str,
        alias_label: str,
        alias_id: str,
        user_identity_request_body: m.UserIdentityRequest | Body,
    ) -> m.UserIdentity:
        """Add aliases to a user found by alias."""
        return await self._call(
            "identify_user_by_alias",
            m.UserIdentity.model_validate_json,
            path=_alias(app_id, alias_label, alias_id),
            body=_as(m.UserIdentityRequest, user_identity_request_body),
        )

    async def delete_alias(
        self, app_id: str, alias_label: str, alias_id: str, alias_label_to_delete: str
    ) -> m.UserIdentity:
        """Remove one alias from a user."""
        path = {
            **_alias(app_id, alias_label, alias_id),
            "alias_label_to_delete": alias_label_to_delete,
        }
        return await self._call("delete_alias", m.UserIdentity.model_validate_json, path=path)

    async def create_subscription(
        self,
        app_id: str,
        alias_label: str,
        alias_id: str,
        create_subscription_request_body: m.CreateSubscriptionRequest | Body,
    ) -> m.SubscriptionCreated:
        """Add a subscription (device, email, phone) to a user."""
        return await self._call(
            "create_subscription",
            m.SubscriptionCreated.model_validate_json,
            path=_alias(app_id, alias_label, alias_id),
            body=_as(m.CreateSubscriptionRequest, create_subscription_request_body),
        )

    # ---------------------------------------------------------------- subscriptions

    async def update_subscription(
        self,
        app_id: str,
        subscription_id: str,
        update_subscription_request_body: m.UpdateSubscriptionRequest | Body,
    ) -> None:
        """Change a subscription (enable, token...)."""
        await self._request(
            "update_subscription",
            path={"app_id": app_id, "subscription_id": subscription_id},
            body=_as(m.UpdateSubscriptionRequest, update_subscription_request_body),
        )

    async def delete_subscription(self, app_id: str, subscription_id: str) -> None:
        """Delete a subscription."""
        await self._request(
            "delete_subscription", path={"app_id": app_id, "subscription_id": subscription_id}
        )

    async def fetch_aliases(self, app_id: str, subscription_id: str) -> m.UserIdentity:
        """The aliases of the user owning a subscription."""
        return await self._call(
            "fetch_aliases",
            m.UserIdentity.model_validate_json,
            path={"app_id": app_id, "subscription_id": subscription_id},
        )

    async def identify_user_by_subscription_id(
        self,
        app_id: str,
        subscription_id: str,
        user_identity_request_body: m.UserIdentityRequest | Body,
    ) -> m.UserIdentity:
        """Add aliases to the user owning a subscription."""
        return await self._call(
            "identify_user_by_subscription_id",
            m.UserIdentity.model_validate_json,
            path={"app_id": app_id, "subscription_id": subscription_id},
            body=_as(m.UserIdentityRequest, user_identity_request_body),
        )

    async def transfer_subscription(
        self,
        app_id: str,
        subscription_id: str,
        transfer_subscription_request_body: m.TransferSubscriptionRequest | Body,
    ) -> m.UserIdentity:
        """Move a subscription to another user."""
        return await self._call(
            "transfer_subscription",
            m.UserIdentity.model_validate_json,
            path={"app_id": app_id, "subscription_id": subscription_id},
            body=_as(m.TransferSubscriptionRequest, transfer_subscription_request_body),
        )

    async def get_eligible_iams(self, app_id: str, subscription_id: str) -> m.EligibleIams:
        """In-app messages a subscription may see."""
        return await self._call(
            "get_eligible_iams",
            m.EligibleIams.model_validate_json,
            path={"app_id": app_id, "subscription_id": subscription_id},
        )

    # --------------------------------------------------------------- live activities

    async def begin_live_activity(
        self,
        app_id: str,
        activity_id: str,
        begin_live_activity_request: m.BeginLiveActivityRequest | Body,
    ) -> None:
        """Register a device's Live Activity push token."""
        await self._request(
            "begin_live_activity",
            path={"app_id": app_id, "activity_id": activity_id},
            body=_as(m.BeginLiveActivityRequest, begin_live_activity_request),
        )

    async def update_live_activity(
        self,
        app_id: str,
        activity_id: str,
        update_live_activity_request: m.UpdateLiveActivityRequest | Body,
    ) -> m.LiveActivityUpdated:
        """Push an update (or the end) to a Live Activity."""
        return await self._call(
            "update_live_activity",
            m.LiveActivityUpdated.model_validate_json,
            path={"app_id": app_id, "activity_id": activity_id},
            body=_as(m.UpdateLiveActivityRequest, update_live_activity_request),
        )

    async def end_live_activity(self, app_id: str, activity_id: str, subscription_id: str) -> None:
        """Unregister a device from a Live Activity."""
        path = {"app_id": app_id, "activity_id": activity_id, "subscription_id": subscription_id}
        await self._request("end_live_activity", path=path)

    # -------------------------------------------------------- players (legacy device API)

    async def create_player(self, player: m.PlayerRequest | Body) -> m.CreatedWithId:
        """Add a device: `POST /players`."""
        return await self._call(
            "create_player", m.CreatedWithId.model_validate_json, body=_as(m.PlayerRequest, player)
        )

    async def get_player(
        self, app_id: str, player_id: str, *, email_auth_hash: str | None = None
    ) -> m.Player:
        """One device: `GET /players/{player_id}`."""
        return await self._call(
            "get_player",
            m.Player.model_validate_json,
            path={"player_id": player_id},
            query={"app_id": app_id, "email_auth_hash": email_auth_hash},
        )

    async def get_players(
        self, app_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> m.PlayerPage:
        """A page of devices: `GET /players`."""
        return await self._call(
            "get_players",
            m.PlayerPage.model_validate_json,
            query={"app_id": app_id, "limit": limit, "offset": offset},
        )

    async def update_player(self, player_id: str, player: m.PlayerRequest | Body) -> m.Success:
        """Change a device: `PUT /players/{player_id}`."""
        return await self._call(
            "update_player",
            m.Success.model_validate_json,
            path={"player_id": player_id},
            body=_as(m.PlayerRequest, player),
        )

    async def delete_player(self, app_id: str, player_id: str) -> m.Success:
        """Delete a device: `DELETE /players/{player_id}`."""
        return await self._call(
            "delete_player",
            m.Success.model_validate_json,
            path={"player_id": player_id},
            query={"app_id": app_id},
        )

    async def update_player_tags(
        self,
        app_id: str,
        external_user_id: str,
        *,
        update_player_tags_request_body: m.UpdatePlayerTagsRequest | Body | None = None,
    ) -> m.Success:
        """Set tags on the devices of an external user id."""
        return await self._call(
            "update_player_tags",
            m.Success.model_validate_json,
            path={"app_id": app_id, "external_user_id": external_user_id},
            body=_as_optional(m.UpdatePlayerTagsRequest, update_player_tags_request_body),
        )

    async def export_players(
        self,
        app_id: str,
        *,
        export_players_request_body: m.ExportPlayersRequest | Body | None = None,
    ) -> m.CsvExport:
        """Ask for a CSV of the app's devices."""
        return await self._call(
            "export_players",
            m.CsvExport.model_validate_json,
            query={"app_id": app_id},
            body=_as_optional(m.ExportPlayersRequest, export_players_request_body),
        )

    # --------------------------------------------------------------------- plumbing

    async def _call(
        self,
        name: str,
        parse: Callable[[bytes], T],
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: BaseModel | Mapping[str, Any] | None = None,
    ) -> T:
        """Send operation `name` and decode its answer with `parse`."""
        answer = await self._request(name, path=path, query=query, body=body)
        try:
            return parse(answer.content)
        except ValidationError as exc:
            raise _unexpected(name, answer, exc) from None

    async def _request(
        self,
        name: str,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: BaseModel | Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send operation `name` and return its successful answer, undecoded."""
        op = _OPS[name]
        url = self.base_url + (op.path.format_map(_quoted(path)) if path else op.path)
        params = {k: v for k, v in query.items() if v is not None} if query else None
        return await self._send(name, op, url, params, _encode(body))

    async def _send(
        self, name: str, op: _Op, url: str, params: dict[str, Any] | None, content: bytes | None
    ) -> Answer:
        """One logical request: the HTTP exchange, repeated as the retry policy allows."""
        headers = self._headers_for(name, op, content is not None)
        retry = 0
        while True:
            outcome = await self._attempt(name, op, url, params, content, headers, retry)
            if isinstance(outcome, Answer):
                return outcome
            delay = self.retry.delay(retry, outcome.retry_after) if outcome.may_retry else None
            if delay is None:
                raise outcome.error
            logger.warning(
                "OneSignal %s: %s; retry %d of %d in %.2f s",
                name, _short(outcome.error), retry + 1, self.retry.max_retries, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            retry += 1

    async def _attempt(
        self,
        name: str,
        op: _Op,
        url: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
        retry: int,
    ) -> Answer | _Failure:
        """One HTTP exchange: the successful answer, or why it failed and if it may repeat."""
        started = time.monotonic()
        try:
            answer = await self._channel.send(
                op.method,
                url,
                operation=name,
                retry=retry,
                params=params,
                content=content,
                headers=headers,
            )
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            return _Failure(_transport_error(name, exc), may_retry=op.repeatable)
        _log_response(name, answer, started)
        if answer.is_success:
            return answer
        error = self._api_error(name, answer)
        # A 429 was refused before anything ran, so it may repeat whatever the operation.
        may_retry = answer.status == 429 or (op.repeatable and answer.status >= 500)
        return _Failure(error, may_retry, getattr(error, "retry_after", None))

    def _headers_for(self, name: str, op: _Op, has_body: bool) -> Mapping[str, str]:
        headers = self._headers.get(org_key=op.org_key, has_body=has_body)
        if headers is None:
            raise InvalidRequest(f"{name} needs the organization API key (organization_api_key)")
        return headers

    def _api_error(self, name: str, answer: Answer) -> OneSignalAPIError:
        body = self._decoded_body(answer)
        retry_after = _retry_after(answer.headers.get("Retry-After"))
        return error_for_status(answer.status, operation=name, body=body, retry_after=retry_after)

    def _decoded_body(self, answer: Answer) -> Any:
        """The answer as JSON (else text), with any of our keys scrubbed out of it."""
        text = answer.text
        for key in (self._rest_key, self._org_key):
            if key is not None:
                text = text.replace(key.get_secret_value(), "[redacted]")
        try:
            return json.loads(text)
        except ValueError:
            return text


# ------------------------------------------------------------------------- helpers


class _Headers:
    """The request headers of each kind of call, built once per client; never shown.

    They carry the keys, so this object's repr says nothing of them.
    """

    __slots__ = ("_org", "_rest")

    def __init__(self, rest_key: SecretStr, org_key: SecretStr | None) -> None:
        self._rest = _header_pair(rest_key)
        self._org = None if org_key is None else _header_pair(org_key)

    def __repr__(self) -> str:
        return "<OneSignal request headers>"

    def get(self, *, org_key: bool, has_body: bool) -> Mapping[str, str] | None:
        """The headers for a call with the REST key (or the organization key), None if unset."""
        pair = self._org if org_key else self._rest
        return None if pair is None else pair[has_body]


def _header_pair(key: SecretStr) -> tuple[Mapping[str, str], Mapping[str, str]]:
    """(without a body, with a JSON body)."""
    bare = {"Authorization": "Key " + key.get_secret_value(), "Accept": "application/json"}
    return bare, {**bare, "Content-Type": "application/json"}


def _secret(name: str, value: str | SecretStr) -> SecretStr:
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    if not secret.get_secret_value().strip():
        raise InvalidRequest(f"{name} is empty")
    return secret


def _as(model: type[RequestT], value: RequestT | BaseModel | Mapping[str, Any]) -> RequestT:
    """`value` as a `model`: validated from a dict, or taken as is."""
    if isinstance(value, model):
        return value
    data = value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid {model.__name__}: {_describe(exc)}") from None


def _as_optional(
    model: type[RequestT], value: RequestT | BaseModel | Mapping[str, Any] | None
) -> RequestT | None:
    return None if value is None else _as(model, value)


def _describe(exc: ValidationError) -> str:
    """A validation error in one line, without the input values (they may be secrets)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


def _encode(body: BaseModel | Mapping[str, Any] | None) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, BaseModel):
        return body.model_dump_json(exclude_unset=True).encode()
    return json.dumps(body, separators=(",", ":")).encode()


def _quoted(path: Mapping[str, str]) -> dict[str, str]:
    """Path parameters made safe as single URL segments (an id may contain `/`)."""
    for name, value in path.items():
        if not isinstance(value, str) or not value:
            raise InvalidRequest(f"{name} must be a non-empty string")
    return {name: quote(value, safe="") for name, value in path.items()}


def _alias(app_id: str, alias_label: str, alias_id: str) -> dict[str, str]:
    return {"app_id": app_id, "alias_label": alias_label, "alias_id": alias_id}


def _check_no_audience(model: m.NotificationRequest) -> None:
    audience = (
        "included_segments",
        "excluded_segments",
        "filters",
        "include_aliases",
        "include_subscription_ids",
        "include_external_user_ids",
        "include_player_ids",
    )
    given = [field for field in audience if getattr(model, field) is not None]
    if given:
        raise InvalidRequest(f"the notification already has an audience ({', '.join(given)})")


def _transport_error(name: str, exc: Exception) -> OneSignalTransportError:
    """Classify a failure with no HTTP answer as a timeout or a connection error."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    timed_out = is_timeout(exc)
    kind = "timed out" if timed_out else "connection failed"
    detail = type(cause or exc).__name__
    error_type = OneSignalTimeout if timed_out else OneSignalConnectError
    error = error_type(f"OneSignal {name}: {kind} ({detail})")
    error.__cause__ = exc
    return error


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds, from its delta-seconds or HTTP-date form."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _nothing_sent(created: m.NotificationCreated) -> NothingSent:
    errors = normalize_errors(created.errors)
    reason = "; ".join(errors) or "no recipient matched"
    return NothingSent(
        f"OneSignal create_notification sent nothing: {reason}",
        status=200,
        errors=errors,
        body=created.model_dump(),
    )


def _unexpected(name: str, answer: Answer, exc: ValidationError) -> UnexpectedResponse:
    return UnexpectedResponse(
        f"OneSignal {name} answered HTTP {answer.status} with an unexpected body: "
        + _describe(exc),
        status=answer.status,
    )


def _short(error: OneSignalError) -> str:
    if isinstance(error, OneSignalAPIError):
        return f"HTTP {error.status}"
    return str(error).split(": ", 1)[-1]


def _log_response(name: str, answer: Answer, started: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        elapsed = (time.monotonic() - started) * 1000
        logger.debug("OneSignal %s: HTTP %d in %.0f ms", name, answer.status, elapsed)
