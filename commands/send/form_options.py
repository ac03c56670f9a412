"""The compose form's OneSignal options at work: the app's templates listed into the picker,
a chosen template's text shown under it, "Add a language", and the options read into a send.

Templates are listed and shown through the send service's `Templates` (kept briefly), after
the ack; by the time the form is submitted the chosen one is usually kept already, and the
submission waits for OneSignal at most `TEMPLATE_BUDGET` when it is not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import DeliveryOptions, SendRejected, TemplateRef
from bot.onesignal.languages import LANGUAGES
from bot.services import Services
from commands._format import escape
from commands.access import interaction_ids
from commands.outgoing import SLACK_ERRORS
from commands.send.meta import Meta
from commands.views import compose
from commands.views import compose_options as views
from commands.views.compose import ComposeForm

log = logging.getLogger(__name__)

TEMPLATE_BUDGET: Final = 1.0
"""Seconds a submission may wait for OneSignal to show its template (Slack waits 3 s)."""
SLOW_TEMPLATE: Final = (
    "OneSignal was slow to show this template; nothing was sent. Press Send again."
)


def app_of(view: dict[str, Any]) -> str | None:
    """The app chosen in the view (its menu, else the one the form opened with)."""
    typed = compose.read_compose((view.get("state") or {}).get("values") or {}).app
    if typed:
        return typed
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return None
    return (meta.get("app") or None) if isinstance(meta, dict) else None


async def list_templates(
    services: Services, team_id: str, app: str | None
) -> tuple[tuple[str, str], ...] | None:
    """(id, name) of the app's push templates; None when there are none or OneSignal fails."""
    try:
        templates = await services.sends.templates.listing(team_id, app)
    except SendRejected as error:
        log.info("templates not listed: %s", error)
        return None
    return tuple((t.id, t.name or t.id) for t in templates) or None


def template_text(template: TemplateRef) -> str:
    """The template's title and text as the picker's note (mrkdwn, escaped)."""
    title = f"*{escape(template.title)}* " if template.title else ""
    return f"{title}{escape(template.message or '(no English text)')}"


async def resolve_template(
    services: Services,
    team_id: str,
    app: str | None,
    values: dict[str, Any],
    *,
    known: TemplateRef | None = None,
) -> TemplateRef | None:
    """The template chosen in a submitted form; SendRejected("template") when unusable.

    `known`: the template the form's metadata carries (asked of OneSignal when it was picked);
    when it is the one chosen, OneSignal is not asked again.
    """
    chosen = views.read_options(values).template_id
    if chosen is None:
        return None
    if known is not None and known.id == chosen:
        return known
    try:
        async with asyncio.timeout(TEMPLATE_BUDGET):
            return await services.sends.templates.find(team_id, app, chosen)
    except TimeoutError:
        raise SendRejected("template", SLOW_TEMPLATE) from None


def content_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The `SendContent` fields of the options: the other languages."""
    return {"languages": views.read_options(values).languages}


def delivery_of(values: dict[str, Any]) -> DeliveryOptions:
    """The delivery options typed in the form; SendRejected("options") when refused."""
    return DeliveryOptions(**views.read_options(values).delivery)


async def _update(client: AsyncWebClient, view: dict[str, Any], form: ComposeForm) -> None:
    try:
        await client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=compose.compose_view(form)
        )
    except SLACK_ERRORS as error:  # hash_conflict, or the form was closed meanwhile
        log.info("compose form not updated: %s", type(error).__name__)


def _form(view: dict[str, Any]) -> ComposeForm:
    return replace(compose.form_of(view), app=app_of(view))


async def _template_chosen(
    services: Services, body: dict[str, Any], client: AsyncWebClient
) -> None:
    team_id, _ = interaction_ids(body)
    view = body["view"]
    form = _form(view)
    text = ref = None
    try:
        ref = await resolve_template(services, team_id, form.app, view["state"]["values"])
        text = template_text(ref) if ref is not None else None
    except SendRejected as error:
        text = escape(str(error))
    metadata = replace(Meta.load(form.metadata), template=ref).dump()  # for the submission
    options = replace(form.options, template_text=text)
    await _update(client, view, replace(form, options=options, metadata=metadata))


async def _language_added(body: dict[str, Any], client: AsyncWebClient) -> None:
    view = body["view"]
    form = _form(view)
    chosen = ((body.get("actions") or [{}])[0].get("selected_option") or {}).get("value")
    if chosen not in LANGUAGES or chosen in form.options.languages:
        return
    languages = (*form.options.languages, str(chosen))
    await _update(client, view, replace(form, options=replace(form.options, languages=languages)))


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the template picker and "Add a language"."""

    async def on_template(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(
            _template_chosen(services, body, client), respond=None, kind="block_actions"
        )

    async def on_language(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(_language_added(body, client), respond=None, kind="block_actions")

    app.action(views.ACTION_TEMPLATE)(on_template)
    app.action(views.ACTION_ADD_LANGUAGE)(on_language)
