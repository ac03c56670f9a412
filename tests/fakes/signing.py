"""Requests as Slack sends them: signed bodies, slash commands, interactive payloads, events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

DEFAULT_SIGNING_SECRET = "fake-signing-secret-0123456789abcdef"
DEFAULT_APP_ID = "A0PUSHOPS"

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def signature(secret: str, timestamp: int | str, body: str) -> str:
    """Slack's request signature: `v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str,
    *,
    secret: str = DEFAULT_SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = FORM,
) -> dict[str, str]:
    """The headers Slack puts on `body`: signature, timestamp and content type."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Slack-Signature": signature(secret, ts, body),
        "X-Slack-Request-Timestamp": str(ts),
        "Content-Type": content_type,
    }


def trigger_id() -> str:
    """A fresh trigger id shaped like Slack's."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def slash_command(
    *,
    text: str,
    response_url: str,
    user_id: str,
    team_id: str,
    channel_id: str = "C0GENERAL",
    command: str = "/push",
    user_name: str = "alice",
    team_domain: str = "pushops-test",
    enterprise_id: str | None = None,
    trigger: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, str]:
    """The fields of a slash command (form fields over HTTP, the payload in Socket Mode)."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger or trigger_id(),
    }
    if enterprise_id:
        fields["enterprise_id"] = enterprise_id
    return fields


def block_actions(
    *,
    action_id: str,
    user_id: str,
    team_id: str,
    response_url: str,
    value: str | None = None,
    block_id: str = "actions",
    channel_id: str = "C0GENERAL",
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    element_type: str = "button",
    trigger: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A `block_actions` payload: one click on `action_id` in a message (or in `view`)."""
    action: dict[str, Any] = {
        "type": element_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "alice", "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "team": {"id": team_id, "domain": "pushops-test"},
        "trigger_id": trigger or trigger_id(),
        "response_url": response_url,
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "V0FAKE")}
        payload["view"] = view
        del payload["response_url"]
    else:
        payload["container"] = {
            "type": "message",
            "message_ts": (message or {}).get("ts", "1700000000.000100"),
            "channel_id": channel_id,
            "is_ephemeral": message is None,
        }
        payload["channel"] = {"id": channel_id, "name": "general"}
        payload["message"] = message or {"type": "message", "ts": "1700000000.000100"}
    return payload


def message_shortcut(
    *,
    callback_id: str,
    user_id: str,
    team_id: str,
    response_url: str,
    message: dict[str, Any],
    channel_id: str = "C0GENERAL",
    channel_name: str = "general",
    trigger: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A `message_action` payload: a message shortcut used on `message` in a channel."""
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "trigger_id": trigger or trigger_id(),
        "action_ts": f"{time.time():.6f}",
        "message_ts": message.get("ts", "1700000000.000200"),
        "response_url": response_url,
        "team": {"id": team_id, "domain": "pushops-test"},
        "user": {"id": user_id, "username": "alice", "name": "alice", "team_id": team_id},
        "channel": {"id": channel_id, "name": channel_name},
        "message": {"type": "message", "ts": "1700000000.000200", **message},
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "is_enterprise_install": False,
    }


def global_shortcut(
    *,
    callback_id: str,
    user_id: str,
    team_id: str,
    trigger: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A `shortcut` payload: a global shortcut (no channel, no message, no response_url)."""
    return {
        "type": "shortcut",
        "callback_id": callback_id,
        "trigger_id": trigger or trigger_id(),
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team_id, "domain": "pushops-test"},
        "user": {"id": user_id, "username": "alice", "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "is_enterprise_install": False,
    }


def view_submission(
    *,
    callback_id: str,
    user_id: str,
    team_id: str,
    values: dict[str, dict[str, Any]] | None = None,
    private_metadata: str = "",
    view_id: str = "V0FAKE",
    response_urls: list[dict[str, str]] | None = None,
    trigger: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A `view_submission` payload; `values` is Slack's `{block_id: {action_id: {...}}}`."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "pushops-test"},
        "user": {"id": user_id, "username": "alice", "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "deprecated-verification-token",
        "trigger_id": trigger or trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values or {}},
            "hash": "1700000000.abcdef",
            "blocks": [],
        },
        "response_urls": response_urls or [],
    }


def event_callback(
    event: dict[str, Any], *, team_id: str, api_app_id: str = DEFAULT_APP_ID
) -> dict[str, Any]:
    """An Events API envelope around `event`."""
    return {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "is_bot": True, "is_enterprise_install": False}],
    }


def form_body(fields: dict[str, str]) -> str:
    """A form-encoded body, as Slack sends slash commands."""
    return urlencode(fields)


def interactive_body(payload: dict[str, Any]) -> str:
    """An interactive request body: the payload as JSON in a `payload` form field."""
    return urlencode({"payload": json.dumps(payload)})


def event_body(envelope: dict[str, Any]) -> str:
    """An Events API body: the envelope as JSON."""
    return json.dumps(envelope)
