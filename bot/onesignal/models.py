"""Pydantic models of what goes to OneSignal (requests) and what comes back (responses).

Requests and responses are separate classes: a request carries what a caller may set
(`send_after` is a string going in), a response what OneSignal reports (`send_after` is a
unix time coming out). Both keep fields they do not declare (`extra="allow"`), so any
OneSignal field passes through to the API and any new answer field reaches the caller.
Only the fields PushOps reads or sets are declared; the rest travel as extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Channel = Literal["push", "email", "sms"]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are sent as given."""

    model_config = ConfigDict(extra="allow")


class ResponseModel(BaseModel):
    """Base of answers: unknown fields are kept."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- requests


class NotificationRequest(RequestModel):
    """Body of `create_notification`: one message and one audience.

    Target with exactly one kind: `included_segments` (and `excluded_segments`), `filters`,
    `include_aliases` with `target_channel`, `include_subscription_ids`, or the legacy
    `include_external_user_ids` / `include_player_ids`. `send_after` is a string OneSignal
    parses ("2026-12-01T09:00:00+01:00"); a `datetime` given here is written in ISO 8601.
    """

    app_id: str
    contents: dict[str, str] | None = None
    headings: dict[str, str] | None = None
    subtitle: dict[str, str] | None = None
    template_id: str | None = None
    content_available: bool | None = None
    name: str | None = None

    included_segments: list[str] | None = None
    excluded_segments: list[str] | None = None
    filters: list[dict[str, Any]] | None = None
    include_aliases: dict[str, list[str]] | None = None
    target_channel: Channel | None = None
    include_subscription_ids: list[str] | None = None
    include_external_user_ids: list[str] | None = None
    include_player_ids: list[str] | None = None
    channel_for_external_user_ids: str | None = None

    url: str | None = None
    web_url: str | None = None
    app_url: str | None = None
    big_picture: str | None = None
    chrome_web_image: str | None = None
    ios_attachments: dict[str, str] | None = None
    large_icon: str | None = None
    small_icon: str | None = None
    chrome_web_icon: str | None = None
    data: dict[str, Any] | None = None
    buttons: list[dict[str, Any]] | None = None
    web_buttons: list[dict[str, Any]] | None = None

    send_after: str | None = None
    delayed_option: str | None = None
    delivery_time_of_day: str | None = None
    ttl: int | None = None
    priority: int | None = None
    # A string in OneSignal's API description (both 1.2.2 and 5.12): "500", not 500.
    throttle_rate_per_minute: str | None = None
    idempotency_key: str | None = None
    external_id: str | None = None

    @field_validator("send_after", mode="before")
    @classmethod
    def _datetime_to_text(cls, value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value


class EstimateRecipientsRequest(RequestModel):
    """Body of `estimate_notification_recipients`: an app and ONE kind of audience.

    The kinds: `included_segments` (optionally with `excluded_segments`), `filters`, or
    `include_aliases` with `target_channel`.
    """

    app_id: str
    included_segments: list[str] | None = None
    excluded_segments: list[str] | None = None
    filters: list[dict[str, Any]] | None = None
    include_aliases: dict[str, list[str]] | None = None
    target_channel: Channel | None = None

    @model_validator(mode="after")
    def _one_audience_kind(self) -> EstimateRecipientsRequest:
        kinds = [
            self.included_segments is not None or self.excluded_segments is not None,
            self.filters is not None,
            self.include_aliases is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one audience: included_segments/excluded_segments, "
                "filters, or include_aliases with target_channel"
            )
        if self.include_aliases is not None and self.target_channel is None:
            raise ValueError("include_aliases needs target_channel ('push', 'email' or 'sms')")
        return self


class AppRequest(RequestModel):
    """Body of `create_app` / `update_app`. Credentials in it are hidden from `repr`."""

    name: str | None = None
    site_name: str | None = None
    chrome_web_origin: str | None = None
    apns_env: Literal["sandbox", "production"] | None = None
    apns_bundle_id: str | None = None
    organization_id: str | None = None
    gcm_key: str | None = Field(default=None, repr=False)
    chrome_key: str | None = Field(default=None, repr=False)
    apns_p12: str | None = Field(default=None, repr=False)
    apns_p12_password: str | None = Field(default=None, repr=False)
    apns_p8: str | None = Field(default=None, repr=False)
    safari_apns_p12: str | None = Field(default=None, repr=False)
    safari_apns_p12_password: str | None = Field(default=None, repr=False)


class PlayerRequest(RequestModel):
    """Body of `create_player` / `update_player` (the legacy device API)."""

    app_id: str | None = None
    device_type: int | None = None
    identifier: str | None = None
    language: str | None = None
    timezone: int | None = None
    external_user_id: str | None = None
    tags: dict[str, Any] | None = None
    notification_types: int | None = None


class SegmentRequest(RequestModel):
    """Body of `create_segments`: a named segment defined by filters."""

    name: str
    filters: list[dict[str, Any]]
    id: str | None = None


class UserRequest(RequestModel):
    """Body of `create_user`: identity (aliases), properties and subscriptions."""

    properties: dict[str, Any] | None = None
    identity: dict[str, str] | None = None
    subscriptions: list[dict[str, Any]] | None = None
    subscription_options: dict[str, Any] | None = None


class UpdateUserRequest(RequestModel):
    """Body of `update_user`."""

    properties: dict[str, Any] | None = None
    refresh_device_metadata: bool | None = None
    deltas: dict[str, Any] | None = None


class UserIdentityRequest(RequestModel):
    """Body of `identify_user_by_alias` / `identify_user_by_subscription_id`."""

    identity: dict[str, str]


class TransferSubscriptionRequest(RequestModel):
    """Body of `transfer_subscription`: the identity of the new owner."""

    identity: dict[str, str]


class CreateSubscriptionRequest(RequestModel):
    """Body of `create_subscription`."""

    subscription: dict[str, Any]
    retain_previous_owner: bool | None = None


class UpdateSubscriptionRequest(RequestModel):
    """Body of `update_subscription`."""

    subscription: dict[str, Any]


class BeginLiveActivityRequest(RequestModel):
    """Body of `begin_live_activity`."""

    push_token: str
    subscription_id: str


class UpdateLiveActivityRequest(RequestModel):
    """Body of `update_live_activity`."""

    name: str
    event: Literal["update", "end"]
    event_updates: dict[str, Any]
    dismiss_at: float | None = None


class NotificationHistoryRequest(RequestModel):
    """Body of `get_notification_history`: which events, and where to mail the CSV."""

    events: Literal["sent", "clicked"]
    app_id: str
    email: str | None = None


class ExportPlayersRequest(RequestModel):
    """Body of `export_players`."""

    extra_fields: list[str] | None = None
    last_active_since: str | None = None
    segment_name: str | None = None


class UpdatePlayerTagsRequest(RequestModel):
    """Body of `update_player_tags`."""

    tags: dict[str, Any]


# -------------------------------------------------------------------------- responses


class NotificationCreated(ResponseModel):
    """Answer of `create_notification`; `errors` lists ids that were skipped, if any.

    An empty `id`, or none at all, means nothing was created (both are documented: "If no
    id is returned, then a message was not created"); `errors` then says why.
    """

    id: str = ""
    recipients: int | None = None
    external_id: str | None = None
    errors: Any = None


class NotificationDetails(ResponseModel):
    """One notification with its delivery counters (`get_notification`)."""

    id: str
    app_id: str | None = None
    contents: dict[str, str] | None = None
    headings: dict[str, str] | None = None
    included_segments: list[str] | None = None
    excluded_segments: list[str] | None = None
    successful: int | None = None
    failed: int | None = None
    errored: int | None = None
    converted: int | None = None
    received: int | None = None
    remaining: int | None = None
    queued_at: int | None = None
    send_after: int | None = None
    completed_at: int | None = None
    canceled: bool | None = None
    platform_delivery_stats: dict[str, Any] | None = None


class NotificationPage(ResponseModel):
    """A page of notifications (`get_notifications`)."""

    total_count: int | None = None
    offset: int | None = None
    limit: int | None = None
    notifications: list[NotificationDetails] = []


class Success(ResponseModel):
    """The `{"success": true}` answer of cancels, deletes and tag updates."""

    success: bool | None = None


class CreatedWithId(ResponseModel):
    """`{"success": true, "id": ...}` of `create_segments` and `create_player`."""

    success: bool | None = None
    id: str | None = None


class NotificationHistory(ResponseModel):
    """Answer of `get_notification_history`: where the CSV will be."""

    success: bool | None = None
    destination_url: str | None = None


class CsvExport(ResponseModel):
    """Answer of `export_players` and `export_events`."""

    csv_file_url: str | None = None


class AppInfo(ResponseModel):
    """An app (`get_app`, `get_apps`, `create_app`, `update_app`).

    OneSignal includes the app's REST API key as `basic_auth_key`; it is kept secret here
    (never in `repr`, dumped as `SecretStr`).
    """

    id: str
    name: str | None = None
    players: int | None = None
    messageable_players: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    basic_auth_key: SecretStr | None = Field(default=None, repr=False)


class Outcome(ResponseModel):
    """One outcome figure."""

    id: str | None = None
    value: float | None = None
    aggregation: str | None = None


class Outcomes(ResponseModel):
    """Answer of `get_outcomes`."""

    outcomes: list[Outcome] = []


class LiveActivityUpdated(ResponseModel):
    """Answer of `update_live_activity`."""

    notification_id: str | None = None
    errors: Any = None


class Subscription(ResponseModel):
    """One subscription (device, email or phone) of a user."""

    id: str | None = None
    type: str | None = None
    token: str | None = None
    enabled: bool | None = None
    notification_types: int | None = None
    session_count: int | None = None
    last_active: int | None = None
    device_model: str | None = None
    device_os: str | None = None
    app_version: str | None = None


class UserProperties(ResponseModel):
    """A user's properties: tags, language, time zone, activity."""

    tags: dict[str, Any] | None = None
    language: str | None = None
    timezone_id: str | None = None
    country: str | None = None
    first_active: int | None = None
    last_active: int | None = None


class User(ResponseModel):
    """A user (`fetch_user`, `create_user`)."""

    properties: UserProperties | None = None
    identity: dict[str, str] = {}
    subscriptions: list[Subscription] = []


class UserPropertiesUpdate(ResponseModel):
    """Answer of `update_user`."""

    properties: UserProperties | None = None


class UserIdentity(ResponseModel):
    """A user's aliases (`fetch_user_identity`, `fetch_aliases`, identify, transfer)."""

    identity: dict[str, str] = {}


class SubscriptionCreated(ResponseModel):
    """Answer of `create_subscription`."""

    subscription: Subscription | None = None


class EligibleIams(ResponseModel):
    """Answer of `get_eligible_iams`."""

    in_app_messages: list[dict[str, Any]] = []


class Player(ResponseModel):
    """A device record of the legacy API (`get_player`)."""

    id: str | None = None
    app_id: str | None = None
    device_type: int | None = None
    identifier: str | None = None
    external_user_id: str | None = None
    tags: dict[str, Any] | None = None
    last_active: int | None = None


class PlayerPage(ResponseModel):
    """A page of device records (`get_players`)."""

    total_count: int | None = None
    offset: int | None = None
    limit: int | None = None
    players: list[Player] = []


class Segment(ResponseModel):
    """One segment as listed by `get_segments`."""

    id: str
    name: str
    app_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    read_only: bool | None = None
    is_active: bool | None = None


class SegmentPage(ResponseModel):
    """Answer of `get_segments`."""

    total_count: int | None = None
    offset: int | None = None
    limit: int | None = None
    segments: list[Segment] = []


class Template(ResponseModel):
    """A message template (`view_template`, items of `view_templates`)."""

    id: str
    name: str | None = None
    channel: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    content: dict[str, Any] | None = None


class TemplatePage(ResponseModel):
    """Answer of `view_templates`."""

    templates: list[Template] = []


class RecipientEstimate(ResponseModel):
    """How many people a notification would reach (`estimate_notification_recipients`).

    `count` is after OneSignal's cap (when `cap_applied`), `uncapped_count` before it.
    """

    count: int
    uncapped_count: int | None = None
    cap_applied: bool | None = None
