"""The route table: every operation the fake serves, its key and where its app id comes from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from re import Pattern
from typing import Literal

from starlette.routing import compile_path

from tests.fakes.onesignal import apps, notifications, players, users
from tests.fakes.onesignal.calls import Call, Reply

Key = Literal["rest", "org"]
AppFrom = Literal["path", "query", "body"]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: `key` is the key it needs, `app_from` where its app id is read."""

    method: str
    template: str
    operation: str
    handler: Callable[[Call], Reply]
    app_from: AppFrom | None
    key: Key = "rest"


_APP = "/apps/{app_id}"
_USER = _APP + "/users/by/{alias_label}/{alias_id}"
_SUBSCRIPTION = _APP + "/subscriptions/{subscription_id}"
_NOTIFICATION = "/notifications/{notification_id}"
_ACTIVITY = _APP + "/live_activities/{activity_id}"

ROUTES: tuple[Route, ...] = (
    # The 37 operations of OneSignal API v1.2.2.
    Route("GET", "/notifications", "get_notifications", notifications.listing, "query"),
    Route("POST", "/notifications", "create_notification", notifications.create, "body"),
    Route("GET", _NOTIFICATION, "get_notification", notifications.view, "query"),
    Route("DELETE", _NOTIFICATION, "cancel_notification", notifications.cancel, "query"),
    Route(
        "POST",
        _NOTIFICATION + "/history",
        "get_notification_history",
        notifications.history,
        "body",
    ),
    Route(
        "POST",
        _NOTIFICATION + "/export_events",
        "export_events",
        notifications.export_events,
        "query",
    ),
    Route("GET", "/apps", "get_apps", apps.list_apps, None, "org"),
    Route("POST", "/apps", "create_app", apps.create_app, None, "org"),
    Route("GET", _APP, "get_app", apps.view_app, "path", "org"),
    Route("PUT", _APP, "update_app", apps.update_app, "path", "org"),
    Route("POST", _APP + "/segments", "create_segments", apps.create_segment, "path"),
    Route(
        "DELETE", _APP + "/segments/{segment_id}", "delete_segments", apps.delete_segment, "path"
    ),
    Route("GET", _APP + "/outcomes", "get_outcomes", apps.outcomes, "path"),
    Route(
        "POST",
        _ACTIVITY + "/notifications",
        "update_live_activity",
        apps.update_live_activity,
        "path",
    ),
    Route("POST", _ACTIVITY + "/token", "begin_live_activity", apps.begin_live_activity, "path"),
    Route(
        "DELETE",
        _ACTIVITY + "/token/{subscription_id}",
        "end_live_activity",
        apps.end_live_activity,
        "path",
    ),
    Route("POST", _APP + "/users", "create_user", users.create_user, "path"),
    Route(
        "PUT",
        _APP + "/users/{external_user_id}",
        "update_player_tags",
        users.update_player_tags,
        "path",
    ),
    Route("GET", _USER, "fetch_user", users.fetch_user, "path"),
    Route("PATCH", _USER, "update_user", users.update_user, "path"),
    Route("DELETE", _USER, "delete_user", users.delete_user, "path"),
    Route("PATCH", _USER + "/identity", "identify_user_by_alias", users.identify_user, "path"),
    Route("GET", _USER + "/identity", "fetch_user_identity", users.fetch_identity, "path"),
    Route(
        "DELETE",
        _USER + "/identity/{alias_label_to_delete}",
        "delete_alias",
        users.delete_alias,
        "path",
    ),
    Route(
        "POST", _USER + "/subscriptions", "create_subscription", users.create_subscription, "path"
    ),
    Route("PATCH", _SUBSCRIPTION, "update_subscription", users.update_subscription, "path"),
    Route("DELETE", _SUBSCRIPTION, "delete_subscription", users.delete_subscription, "path"),
    Route("GET", _SUBSCRIPTION + "/user/identity", "fetch_aliases", users.fetch_aliases, "path"),
    Route(
        "PATCH",
        _SUBSCRIPTION + "/user/identity",
        "identify_user_by_subscription_id",
        users.identify_by_subscription,
        "path",
    ),
    Route(
        "PATCH",
        _SUBSCRIPTION + "/owner",
        "transfer_subscription",
        users.transfer_subscription,
        "path",
    ),
    Route("GET", _SUBSCRIPTION + "/iams", "get_eligible_iams", users.eligible_iams, "path"),
    Route("GET", "/players", "get_players", players.list_players, "query"),
    Route("POST", "/players", "create_player", players.create_player, "body"),
    Route("DELETE", "/players/{player_id}", "delete_player", players.delete_player, "query"),
    Route("GET", "/players/{player_id}", "get_player", players.view_player, "query"),
    Route("PUT", "/players/{player_id}", "update_player", players.update_player, "body"),
    Route("POST", "/players/csv_export", "export_players", players.export_players, "query"),
    # From the current API (5.12), used by the compose form and its preview.
    Route("GET", _APP + "/segments", "get_segments", apps.list_segments, "path"),
    Route("GET", "/templates", "view_templates", apps.list_templates, "query"),
    Route("GET", "/templates/{template_id}", "view_template", apps.view_template, "query"),
    Route(
        "POST",
        "/notifications/count-unsaved",
        "estimate_notification_recipients",
        notifications.count_unsaved,
        "body",
    ),
)


class Router:
    """Finds the route of a request: a dict lookup for fixed paths, then the templates."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._fixed: dict[tuple[str, str], Route] = {}
        self._templated: list[tuple[str, Pattern[str], Route]] = []
        for route in routes:
            if "{" in route.template:
                regex, _, _ = compile_path(route.template)
                self._templated.append((route.method, regex, route))
            else:
                self._fixed[(route.method, route.template)] = route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self._fixed.get((method, path))
        if route is not None:
            return route, {}
        for route_method, regex, route in self._templated:
            if route_method == method and (found := regex.match(path)) is not None:
                return route, found.groupdict()
        return None
