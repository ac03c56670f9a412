"""OneSignal's message templates of an app: listed (`view_templates`), kept briefly, and one
found by name or id with its content (`view_template`) for a send to use.

Listing is what the compose form's picker shows and what a send naming a template is
matched against; templates change rarely, so a list is kept `LIST_TTL` seconds per app,
and many asking at once share one call (`bot.cache.Expiring`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from bot.cache import Expiring
from bot.delivery.apps import AppClient, AppClients, AppUnavailable
from bot.delivery.content import SendRejected, TemplateRef
from bot.onesignal import OneSignalError
from bot.onesignal.models import Template
from storage.errors import AppNotFound

LIST_TTL: Final = 60.0
"""Seconds an app's template list is kept."""
LIST_LIMIT: Final = 50
"""Templates listed per app (OneSignal's page)."""
_NAMES_SHOWN: Final = 20


class Templates:
    """The templates of each workspace's apps, through the apps' OneSignal clients."""

    def __init__(self, apps: AppClients, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._apps = apps
        self._lists: Expiring[tuple[str, str | None], list[Template]] = Expiring(clock=clock)
        self._shown: Expiring[tuple[str, str | None, str], TemplateRef] = Expiring(clock=clock)

    async def listing(self, team_id: str, app_name: str | None) -> list[Template]:
        """The push templates of the app (the default when None), kept `LIST_TTL` s.

        Raises SendRejected("template") when OneSignal cannot be asked or the app is unknown.
        """
        app = await self._app(team_id, app_name)

        async def load() -> tuple[list[Template], float]:
            try:
                page = await app.client.view_templates(
                    app.onesignal_app_id, limit=LIST_LIMIT, channel="push"
                )
            except OneSignalError as error:
                raise SendRejected(
                    "template", f"OneSignal did not list the templates of {app.name}: {error}"
                ) from None
            return page.templates, LIST_TTL

        return await self._lists.get((team_id, app_name), load)

    async def find(self, team_id: str, app_name: str | None, ref: str) -> TemplateRef:
        """The template `ref` names (its name, any case, or its id) with its English text.

        An unknown one is refused naming the app's templates.
        """
        wanted = ref.strip()
        templates = await self.listing(team_id, app_name)
        found = next((t for t in templates if t.id == wanted), None) or next(
            (t for t in templates if (t.name or "").casefold() == wanted.casefold()), None
        )
        if found is None:
            raise SendRejected("template", _unknown(wanted, templates))
        app = await self._app(team_id, app_name)

        async def load() -> tuple[TemplateRef, float]:
            try:
                full = await app.client.view_template(app.onesignal_app_id, found.id)
            except OneSignalError as error:
                raise SendRejected(
                    "template", f"OneSignal did not show the template {found.name!r}: {error}"
                ) from None
            return ref_of(full), LIST_TTL

        return await self._shown.get((team_id, app_name, found.id), load)

    def forget(self, team_id: str) -> None:
        """Drop the workspace's kept lists (its apps changed)."""
        self._lists.forget_where(lambda key: key[0] == team_id)
        self._shown.forget_where(lambda key: key[0] == team_id)

    async def _app(self, team_id: str, app_name: str | None) -> AppClient:
        try:
            return await self._apps.by_name(team_id, app_name)
        except (AppNotFound, AppUnavailable) as error:
            raise SendRejected("app", str(error)) from None


def ref_of(template: Template) -> TemplateRef:
    """What a send keeps of a template: id, name, English text and title."""
    content: Mapping[str, Any] = template.content or {}
    return TemplateRef(
        id=template.id,
        name=template.name or template.id,
        message=_english(content.get("contents")),
        title=_english(content.get("headings")),
    )


def _english(texts: Any) -> str | None:
    if isinstance(texts, Mapping) and isinstance(texts.get("en"), str):
        return str(texts["en"]).strip() or None
    return None


def _unknown(wanted: str, templates: list[Template]) -> str:
    names = [t.name or t.id for t in templates]
    if not names:
        return f"There is no template {wanted[:60]!r}: this app has no push templates in OneSignal."
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
    return f"There is no template {wanted[:60]!r}. This app's templates: {shown}{more}."
