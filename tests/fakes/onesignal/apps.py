"""App-level endpoints: apps (organization key), segments, outcomes, live activities, templates."""

from __future__ import annotations

from typing import Any

from tests.fakes.onesignal.calls import Call, Reply, page
from tests.fakes.onesignal.errors import errors
from tests.fakes.onesignal.store import AppState, Store, new_id, now_iso, reachable

# Fields of the App schema a client may send but never reads back.
APP_WRITE_ONLY = frozenset(
    {
        "android_gcm_sender_id",
        "apns_p12",
        "apns_p12_password",
        "safari_apns_p12",
        "safari_apns_p12_password",
        "organization_id",
        "additional_data_is_root_payload",
    }
)
APP_READ_ONLY = frozenset(
    {"id", "players", "messageable_players", "created_at", "updated_at", "basic_auth_key"}
)


def app_view(state: AppState) -> dict[str, Any]:
    """The App schema for one app (its REST key is `basic_auth_key`, as in the API)."""
    subscriptions = [s for user in state.users.values() for s in user["subscriptions"]]
    view: dict[str, Any] = {
        "id": state.app.id,
        "name": state.app.name,
        "players": len(subscriptions),
        "messageable_players": sum(1 for s in subscriptions if reachable(s, "push")),
        "gcm_key": None,
        "chrome_web_origin": None,
        "chrome_key": None,
        "site_name": None,
        "basic_auth_key": state.app.rest_api_key,
    }
    view.update((k, v) for k, v in state.fields.items() if k not in APP_WRITE_ONLY)
    return view


def list_apps(call: Call) -> Reply:
    """GET /apps."""
    return Reply(200, [app_view(state) for state in call.store.apps.values()])


def create_app(call: Call) -> Reply:
    """POST /apps: a new app with its own REST key."""
    body = call.json
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise errors(400, "Name can't be blank")
    store: Store = call.store
    app = store.add_app(name)
    _apply_fields(store.apps[app.id], body)
    return Reply(200, app_view(store.apps[app.id]))


def view_app(call: Call) -> Reply:
    """GET /apps/{app_id}."""
    return Reply(200, app_view(call.state))


def update_app(call: Call) -> Reply:
    """PUT /apps/{app_id}."""
    body = call.json
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise errors(400, "Name can't be blank")
    _apply_fields(call.state, body)
    return Reply(200, app_view(call.state))


def _apply_fields(state: AppState, body: dict[str, Any]) -> None:
    if isinstance(body.get("name"), str):
        state.app.name = body["name"]
    state.fields.update((k, v) for k, v in body.items() if k not in APP_READ_ONLY | {"name"})
    state.fields["updated_at"] = now_iso()


def list_segments(call: Call) -> Reply:
    """GET /apps/{app_id}/segments?offset=&limit= (oldest first, at most 300)."""
    limit = call.int_arg("limit", 300, maximum=300)
    offset = call.int_arg("offset", 0)
    segments = [s.data for s in call.state.segments.values()]
    return Reply(
        200,
        {
            "total_count": len(segments),
            "offset": offset,
            "limit": limit,
            "segments": page(segments, offset, limit),
        },
    )


def create_segment(call: Call) -> Reply:
    """POST /apps/{app_id}/segments: name and filters; 409 on a name already used."""
    body = call.json
    name = body.get("name")
    filters = body.get("filters")
    if not isinstance(name, str) or not name.strip():
        raise errors(400, "name is required")
    if not isinstance(filters, list):  # required by the schema, but may be empty
        raise errors(400, "filters must be an array")
    if call.state.segment_named(name) is not None:
        return Reply(409, {"success": False, "errors": [f"Segment {name} already exists"]})
    data = call.store.add_segment(call.state.app.id, name, filters=filters)
    return Reply(201, {"success": True, "id": data["id"]})


def delete_segment(call: Call) -> Reply:
    """DELETE /apps/{app_id}/segments/{segment_id}."""
    segment = call.state.segments.get(call.params["segment_id"])
    if segment is None:
        return Reply(404, {"success": False})
    if segment.data["read_only"]:
        raise errors(400, "This segment is read only")
    del call.state.segments[call.params["segment_id"]]
    return Reply(200, {"success": True})


def outcomes(call: Call) -> Reply:
    """GET /apps/{app_id}/outcomes?outcome_names=a.count,b.sum (and outcome_names[]=...).

    `outcome_names` is a comma-separated list; each `outcome_names[]` is one name that may
    itself contain commas ("Sales, Purchase.count"), as the API documents.
    """
    listed = [n.strip() for value in call.query.get("outcome_names", []) for n in value.split(",")]
    names = [n for n in listed if n] + call.query.get("outcome_names[]", [])
    if not names:
        raise errors(400, "outcome_names is required")
    mine = [n for n in call.store.notifications.values() if n["app_id"] == call.state.app.id]
    totals = {
        "os__click": sum(n["converted"] for n in mine),
        "os__confirmed_delivery": sum(n["received"] for n in mine),
    }
    data = []
    for name in names:
        outcome, _, aggregation = name.rpartition(".")
        if not outcome or aggregation not in ("count", "sum"):
            raise errors(400, f"outcome_names must look like name.count or name.sum: {name}")
        data.append({"id": outcome, "value": totals.get(outcome, 0), "aggregation": aggregation})
    return Reply(200, {"outcomes": data})


def update_live_activity(call: Call) -> Reply:
    """POST /apps/{app_id}/live_activities/{activity_id}/notifications."""
    body = call.json
    missing = [key for key in ("name", "event", "event_updates") if key not in body]
    if missing:
        raise errors(400, *(f"{key} is required" for key in missing))
    if body["event"] not in ("update", "end"):
        raise errors(400, "event must be one of: update, end")
    return Reply(200, {"notification_id": new_id()})


def begin_live_activity(call: Call) -> Reply:
    """POST /apps/{app_id}/live_activities/{activity_id}/token: 204 like the API."""
    body = call.json
    missing = [key for key in ("push_token", "subscription_id") if not body.get(key)]
    if missing:
        raise errors(400, *(f"{key} is required" for key in missing))
    return Reply(204, None)


def end_live_activity(call: Call) -> Reply:
    """DELETE /apps/{app_id}/live_activities/{activity_id}/token/{subscription_id}."""
    return Reply(204, None)


def list_templates(call: Call) -> Reply:
    """GET /templates?app_id=&limit=&offset=&channel=."""
    limit = call.int_arg("limit", 50, maximum=50)
    offset = call.int_arg("offset", 0)
    channel = call.arg("channel")
    if channel not in (None, "push", "email", "sms"):
        raise errors(400, "channel must be one of: push, email, sms")
    templates = [
        t for t in call.state.templates.values() if channel is None or t["channel"] == channel
    ]
    return Reply(200, {"templates": page(templates, offset, limit)})


def view_template(call: Call) -> Reply:
    """GET /templates/{template_id}?app_id=."""
    template = call.state.templates.get(call.params["template_id"])
    if template is None:
        raise errors(404, "Template not found")
    return Reply(200, template)
