"""manifest.yml and the app agree: every command, shortcut, event and interactive surface the
manifest declares has a listener, every listener is declared, and the scopes match."""

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt.async_app import AsyncApp
from slack_bolt.listener_matcher.async_builtins import AsyncBuiltinListenerMatcher

from bot import const
from bot.app import build_app
from bot.services import Services, build_services
from bot.settings import Settings
from storage.crypto import KeyRing, generate_key
from storage.db import Database

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"

# Bolt matcher kinds that need Slack's interactivity request URL.
INTERACTIVE_KINDS = {
    "action",
    "block_action",
    "attachment_action",
    "dialog_submission",
    "dialog_cancellation",
    "dialog_suggestion",
    "view",
    "view_submission",
    "view_closed",
    "options",
    "block_suggestion",
    "shortcut",
    "global_shortcut",
    "message_shortcut",
}
SHORTCUT_KINDS = {"shortcut", "global_shortcut", "message_shortcut"}


def listener_surface(app: AsyncApp) -> set[tuple[str, str]]:
    """(kind, what it matches) for every listener of `app`, read from Bolt's matchers."""
    surface = set()
    for listener in app._async_listeners:
        for matcher in listener.matchers:
            assert isinstance(matcher, AsyncBuiltinListenerMatcher), matcher
            func = matcher.func  # wraps the test Bolt built for the decorator
            wrapped = inspect.getclosurevars(func).nonlocals.get("func", func)
            kind = wrapped.__qualname__.split(".")[0]
            values = inspect.getclosurevars(wrapped).nonlocals
            target = next(
                (
                    values[k]
                    for k in ("command", "event_type", "callback_id", "constraints")
                    if k in values
                ),
                None,
            )
            surface.add((kind, str(target)))
    return surface


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def _single_workspace_app(tmp_path: Path) -> AsyncApp:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="s" * 32)
    return build_app(settings, services=_services(settings, tmp_path))


def _oauth_app(tmp_path: Path) -> AsyncApp:
    settings = Settings(
        _env_file=None,
        slack_client_id="1111.2222",
        slack_client_secret="c" * 32,
        slack_signing_secret="s" * 32,
    )
    return build_app(settings, services=_services(settings, tmp_path))


def _services(settings: Settings, tmp_path: Path) -> Services:
    """Services enough to build the app (its listeners are only listed, never run)."""
    database = Database.open(f"sqlite:///{tmp_path / 'manifest.db'}")
    keyring = KeyRing.from_text(generate_key())
    return build_services(settings, database=database, keyring=keyring)


@pytest.fixture(params=["single workspace", "oauth"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncApp:
    build = _single_workspace_app if request.param == "single workspace" else _oauth_app
    return build(tmp_path)


def test_slash_commands_match_the_command_listeners(manifest, app):
    declared = {c["command"] for c in manifest["features"]["slash_commands"]}
    listened = {target for kind, target in listener_surface(app) if kind == "command"}

    assert declared == listened == {const.SLASH_COMMAND}


def test_shortcuts_match_the_shortcut_listeners(manifest, app):
    declared = {s["callback_id"] for s in manifest["features"].get("shortcuts", [])}
    listened = {target for kind, target in listener_surface(app) if kind in SHORTCUT_KINDS}

    assert declared == listened


def test_interactivity_is_enabled_exactly_when_something_listens_to_it(manifest, app):
    interactive = {(k, t) for k, t in listener_surface(app) if k in INTERACTIVE_KINDS}

    assert manifest["settings"]["interactivity"]["is_enabled"] == bool(interactive)


def test_bot_events_match_the_event_listeners(manifest, app):
    declared = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    listened = {target for kind, target in listener_surface(app) if kind == "event"}

    assert declared == listened


def test_every_listener_is_of_a_kind_the_manifest_can_declare(app):
    kinds = {kind for kind, _ in listener_surface(app)}

    assert kinds <= {"command", "event"} | INTERACTIVE_KINDS


def test_bot_scopes_are_the_ones_the_app_asks_for(manifest):
    assert manifest["oauth_config"]["scopes"]["bot"] == list(const.BOT_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_every_request_url_is_the_slack_events_door(manifest):
    settings = manifest["settings"]
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls += [
        settings["interactivity"]["request_url"],
        settings["event_subscriptions"]["request_url"],
    ]

    assert all(url.endswith(const.PATH_EVENTS) for url in urls)
    assert all(
        u.endswith(const.PATH_OAUTH_REDIRECT) for u in manifest["oauth_config"]["redirect_urls"]
    )


def test_usage_hint_names_every_subcommand(manifest):
    hint = manifest["features"]["slash_commands"][0]["usage_hint"]

    for name in const.SUBCOMMANDS:
        assert name in hint


LISTENER_OF_SHORTCUT_TYPE = {"message": "message_shortcut", "global": "global_shortcut"}


def test_each_shortcut_is_heard_as_the_kind_it_is_declared(manifest, app):
    surface = listener_surface(app)
    declared = {
        (LISTENER_OF_SHORTCUT_TYPE[s["type"]], s["callback_id"])
        for s in manifest["features"]["shortcuts"]
    }

    assert declared == {(k, t) for k, t in surface if k in SHORTCUT_KINDS}
    assert declared == {
        ("message_shortcut", const.CALLBACK_SEND_AS_PUSH),
        ("global_shortcut", const.CALLBACK_COMPOSE_PUSH),
    }


def test_shortcuts_are_named_within_slacks_limits(manifest):
    for shortcut in manifest["features"]["shortcuts"]:
        assert 0 < len(shortcut["name"]) <= 24, shortcut  # Slack refuses longer names
        assert 0 < len(shortcut["description"]) <= 80, shortcut


def test_the_bot_display_name_is_in_the_characters_slack_allows(manifest):
    name = manifest["features"]["bot_user"]["display_name"]

    assert re.fullmatch(r"[a-z0-9._-]{1,80}", name), name


def test_org_wide_installs_are_enabled_as_the_installation_store_supports_them(manifest):
    # The store keeps org-wide installs (tests/scenario/test_enterprise_grid.py installs
    # one and sends through it), so the manifest offers them to Grid admins.
    assert manifest["settings"]["org_deploy_enabled"] is True


def test_the_home_tab_is_enabled_and_its_opening_is_heard(manifest, app):
    home = manifest["features"]["app_home"]

    assert home["home_tab_enabled"] is True
    # the requester's DMs need the Messages tab; PushOps reads no message sent there
    assert home["messages_tab_enabled"] is True and home["messages_tab_read_only_enabled"]
    assert const.EVENT_APP_HOME_OPENED in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert ("event", const.EVENT_APP_HOME_OPENED) in listener_surface(app)
