"""The reply to `/push user`: a OneSignal user's properties, tags, aliases and subscriptions.

Every value comes from OneSignal and is escaped; push tokens (and the addresses of email and
SMS subscriptions) show only their last `TOKEN_SHOWN` characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from bot.onesignal.models import Subscription, User, UserProperties
from bot.words import plural
from commands._format import Block, code, context, dismiss_actions, escape, section
from commands.views.limits import SECTION_TEXT

TOKEN_SHOWN: Final = 6
MAX_TAGS: Final = 30
MAX_SUBSCRIPTIONS: Final = 20
_VALUE_SHOWN: Final = 80


def short_token(token: str | None) -> str:
    """`…` and the last TOKEN_SHOWN characters of a token; "no token" when there is none."""
    if not token:
        return "no token"
    return "…" + escape(token[-TOKEN_SHOWN:].replace("`", "'"))


def slack_time(unix: int | None) -> str:
    """A unix time shown in the reader's own time zone by Slack (UTC in the fallback)."""
    if not unix:
        return "never"
    fallback = datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(unix)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _value(value: Any) -> str:
    text = str(value)
    if len(text) > _VALUE_SHOWN:
        text = text[: _VALUE_SHOWN - 1] + "…"
    return escape(text)


def _capped(lines: list[str], total: int, noun: str, many: str) -> str:
    """`lines` joined, within a section's limit, with how many more there are."""
    text, shown = "", 0
    for line in lines:
        if len(text) + len(line) + 80 > SECTION_TEXT:
            break
        text, shown = f"{text}\n{line}" if text else line, shown + 1
    if total > shown:
        text += f"\n…and {plural(total - shown, 'more ' + noun, 'more ' + many)}"
    return text


def properties_text(properties: UserProperties | None) -> str:
    """Language, time zone, country and activity."""
    p = properties or UserProperties()
    where = [
        f"Language: {_value(p.language or '?')}",
        f"Time zone: {_value(p.timezone_id or '?')}",
        f"Country: {_value(p.country or '?')}",
    ]
    when = [
        f"First active: {slack_time(p.first_active)}",
        f"Last active: {slack_time(p.last_active)}",
    ]
    return "*Properties*\n" + " · ".join(where) + "\n" + " · ".join(when)


def tags_text(tags: Mapping[str, Any] | None) -> str:
    """Up to MAX_TAGS tags as `key`: value."""
    items = sorted((tags or {}).items())
    if not items:
        return "*Tags*\nnone"
    lines = [f"{code(str(k), limit=40)}: {_value(v)}" for k, v in items[:MAX_TAGS]]
    return "*Tags* (" + str(len(items)) + ")\n" + _capped(lines, len(items), "tag", "tags")


def aliases_text(identity: Mapping[str, str]) -> str:
    """Each alias label and id."""
    if not identity:
        return "*Aliases*\nnone"
    lines = [
        f"{code(label, limit=40)}: {_value(alias)}" for label, alias in sorted(identity.items())
    ]
    return "*Aliases*\n" + _capped(lines, len(lines), "alias", "aliases")


def subscription_line(subscription: Subscription) -> str:
    """One subscription: type, whether it can receive, token end, device, activity."""
    s = subscription
    parts = [
        f"*{_value(s.type or 'unknown type')}*",
        _receiving(s),
        f"token {short_token(s.token)}",
    ]
    device = " ".join(_value(x) for x in (s.device_model, s.device_os) if x)
    if device:
        parts.append(device)
    if s.app_version:
        parts.append(f"app {_value(s.app_version)}")
    if s.last_active:
        parts.append(f"last active {slack_time(s.last_active)}")
    return "• " + " · ".join(parts)


def _receiving(s: Subscription) -> str:
    if s.enabled is False:
        return "disabled"
    if s.notification_types is not None and s.notification_types <= 0:
        return f"unsubscribed (notification_types {s.notification_types})"
    return "subscribed"


def subscriptions_text(subscriptions: Iterable[Subscription]) -> str:
    """Up to MAX_SUBSCRIPTIONS subscriptions, one a line."""
    items = list(subscriptions)
    if not items:
        return "*Subscriptions*\nnone: this user cannot receive notifications."
    lines = [subscription_line(s) for s in items[:MAX_SUBSCRIPTIONS]]
    return f"*Subscriptions* ({len(items)})\n" + _capped(
        lines, len(items), "subscription", "subscriptions"
    )


def user_headline(external_id: str, app_name: str) -> str:
    """Whom the reply is about."""
    return f"User {code(external_id, limit=130)} in app *{escape(app_name)}*"


def user_blocks(external_id: str, app_name: str, user: User) -> list[Block]:
    """The whole reply: headline, properties, tags, aliases, subscriptions, Dismiss."""
    properties = user.properties or UserProperties()
    return [
        section(user_headline(external_id, app_name)),
        section(properties_text(properties)),
        section(tags_text(properties.tags)),
        section(aliases_text(user.identity)),
        section(subscriptions_text(user.subscriptions)),
        context(f"Push tokens show only their last {TOKEN_SHOWN} characters."),
        dismiss_actions(),
    ]
