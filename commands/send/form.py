"""The compose form of `/push send`: opened right after the ack, kept current, submitted.

`views.open` runs first (its trigger id dies 3 s after the command); the app's segments
are then listed from OneSignal and the form updated with them, or with a typed field and
the reason when listing fails or the plan does not allow it. Changing the audience updates
the estimate of how many subscriptions it reaches. A submission is checked and its send
stored before the ack; bad fields come back inline (`response_action="errors"`). Slack is
answered within `ACK_BUDGET` even when storing takes longer (the form then closes and the
outcome follows in a message), and one form stores one send however often Send is pressed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.cache import Expiring
from bot.delivery import Audience, Send, SendContent, SendRejected, TemplateRef
from bot.delivery.attempt import explain
from bot.onesignal.errors import OneSignalError
from bot.policy import approvals_required
from bot.recurrence import Recurrence, RecurrenceError, parse_every
from bot.series import Series
from bot.services import Services
from bot.timeparse import TimeParseError, parse_in
from commands import series as series_commands
from commands._format import escape, unknown_app_text
from commands.access import interaction_ids
from commands.cards import estimate_text
from commands.context import CommandContext, CommandError
from commands.dispatch import ACK_BUDGET
from commands.outgoing import SLACK_ERRORS
from commands.send import form_options, previewing
from commands.send.meta import Meta
from commands.send.requester import Requester, requester
from commands.send.storing import (
    Draft,
    answer_where,
    app_names,
    policy_of,
    preview_message,
    store,
    told_store_errors,
)
from commands.views import compose, compose_options
from commands.views.compose import ComposeForm, ComposeInput
from commands.views.compose_options import OptionsForm
from commands.views.sends import zone_of

log = logging.getLogger(__name__)

T = TypeVar("T")

LOOKUP_BUDGET: Final = 1.0
"""Seconds the requester lookup may take inside a submission (Slack waits 3 s for the ack)."""

LOADING: Final = "Loading this app's segments…"


# --- opening ---------------------------------------------------------------------------------


async def open_form(ctx: CommandContext) -> None:
    """Open the compose form, then fill in the default app's segments."""
    await open_compose(
        ctx.services,
        ctx.client,
        team_id=ctx.team_id,
        trigger_id=ctx.trigger_id or "",
        channel=ctx.channel_id,
    )


async def open_compose(
    services: Services,
    client: AsyncWebClient,
    *,
    team_id: str,
    trigger_id: str,
    channel: str | None,
    filled: ComposeInput | None = None,
    options: OptionsForm | None = None,
    editing: uuid.UUID | None = None,
    template: TemplateRef | None = None,
) -> None:
    """Open the compose form (its fields starting with `filled` and `options`), then list the
    chosen app's segments into it; `editing`: the form saves into that send instead;
    `template`: the template `options` names, with its text, kept for the submission.
    CommandError when the workspace has no app to send with."""
    names, default = await _apps(services, team_id)
    if not names:
        raise CommandError(unknown_app_text(None, []))
    app = filled.app if filled is not None and filled.app in names else default
    send = str(editing) if editing is not None else None
    form = ComposeForm(
        apps=names,
        app=app,
        segments_note=LOADING,
        metadata=Meta(channel=channel, app=app, send=send, template=template).dump(),
        filled=filled,
        options=options or OptionsForm(),
        editing=editing is not None,
    )
    opened = await client.views_open(trigger_id=trigger_id, view=compose.compose_view(form))
    await _refresh(services, client, team_id, opened["view"], form)


async def _apps(services: Services, team_id: str) -> tuple[tuple[str, ...], str | None]:
    """The workspace's app names (default first) and the default one."""
    names = tuple(await services.workspaces.app_names(team_id))
    return names, names[0] if names else None  # the default app, or the first without one


async def _refresh(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    view: dict[str, Any],
    form: ComposeForm,
) -> None:
    """List the chosen app's segments and templates and show them (the estimate starts over)."""
    app = Meta.load(form.metadata).app
    segments, note = await list_segments(services, team_id, app)
    templates = await form_options.list_templates(services, team_id, app)
    options = replace(form.options, templates=templates, template_text=None)
    updated = replace(
        form,
        segments=segments,
        segments_note=note,
        estimate=compose.ESTIMATE_PROMPT,
        options=options,
    )
    await _update(client, view, updated)


async def list_segments(
    services: Services, team_id: str, app: str | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """(segment names, None), or (None, why they must be typed)."""
    typed = "Type segment names, separated by commas."
    try:
        page = await services.recall.segments(
            team_id=team_id, app_name=app, limit=compose.MAX_OPTIONS
        )
    except SendRejected:  # the app was removed
        return None, f"The app is not set up any more. {typed}"
    except OneSignalError as error:
        return None, f"Segments could not be listed ({explain(error)}). {typed}"
    names = tuple(segment.name for segment in page.segments if segment.is_active is not False)
    if not names:
        return None, f"OneSignal lists no segments for this app. {typed}"
    if (page.total_count or 0) > len(names) or not compose.selectable(names):
        return None, f"This app has more segments than a menu holds. {typed}"
    return names, None


async def _update(client: AsyncWebClient, view: dict[str, Any], form: ComposeForm) -> None:
    """Show `form` in place of `view`; a newer change by the person wins (hash conflict)."""
    try:
        await client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=compose.compose_view(form)
        )
    except SLACK_ERRORS as error:  # hash_conflict, or the form was closed meanwhile
        log.info("compose form not updated: %s", type(error).__name__)


# --- changes in the open form ----------------------------------------------------------------


async def _app_changed(services: Services, body: dict[str, Any], client: AsyncWebClient) -> None:
    team_id, _ = interaction_ids(body)
    view = body["view"]
    chosen = compose.read_compose(view["state"]["values"]).app
    # Another app has other templates: the one chosen is forgotten with the picker's list.
    meta = replace(Meta.of(view), app=chosen, template=None)
    form = replace(
        compose.form_of(view), app=chosen, segments=None, segments_note=LOADING,
        metadata=meta.dump(),
    )  # fmt: skip
    await _refresh(services, client, team_id, view, form)


async def _audience_changed(
    services: Services, body: dict[str, Any], client: AsyncWebClient
) -> None:
    team_id, _ = interaction_ids(body)
    view = body["view"]
    typed = compose.read_compose(view["state"]["values"])
    form = compose.form_of(view)
    app = Meta.load(form.metadata).app
    try:
        audience = _audience(typed)
        estimate = await services.recall.estimate(team_id=team_id, app_name=app, audience=audience)
    except SendRejected as error:  # a bad audience, or the app was removed meanwhile
        if error.field == "app":
            text = escape(await unknown_app_here(services, team_id, app, view))
        elif not (typed.segments or typed.excluded or typed.external_ids):
            text = compose.ESTIMATE_PROMPT  # cleared while choosing: not an error yet
        else:
            text = escape(str(error))  # it may quote what was typed
    else:
        text = estimate_text(estimate)
    await _update(client, view, replace(form, app=typed.app or app, estimate=text))


def _audience(typed: ComposeInput) -> Audience:
    """The form's audience; SendRejected in the form's words (see `audience_problem`)."""
    problem = audience_problem(typed)
    if problem is not None:
        raise SendRejected("audience", problem[1])
    return Audience(
        segments=typed.segments,
        excluded_segments=typed.excluded,
        external_ids=typed.external_ids,
    )


# `Audience` words these refusals for the command line (`add --segment NAME`); the form
# checks them first and names its own fields instead. `Audience` still checks everything.
NO_AUDIENCE: Final = (
    "Choose at least one segment, or type users' external ids: PushOps never sends to "
    "everyone by default."
)
EXCLUDED_ONLY: Final = (
    "Excluded segments need an included one: choose it under Segments "
    "(for example Subscribed Users)."
)
EXCLUDED_WITH_USERS: Final = (
    "Excluded segments work only with segments, not with users: clear Excluded segments, "
    "or send to segments instead."
)


def audience_problem(typed: ComposeInput) -> tuple[str, str] | None:
    """(the block to show it under, what to fix) for an audience the form refuses in its own
    words; None when `Audience` decides."""
    if not typed.segments and not typed.external_ids:
        return const.BLOCK_COMPOSE_SEGMENTS, EXCLUDED_ONLY if typed.excluded else NO_AUDIENCE
    if typed.excluded and typed.external_ids and not typed.segments:
        return const.BLOCK_COMPOSE_EXCLUDE, EXCLUDED_WITH_USERS
    return None


def _pick_app(view: dict[str, Any]) -> str:
    """How to pick another app in this form: its menu, or a new form when it has none."""
    if any(block.get("block_id") == const.BLOCK_COMPOSE_APP for block in view.get("blocks") or ()):
        return "Choose another under OneSignal app"
    return f"Close this form and run `{const.SLASH_COMMAND} send` again to choose one"


async def unknown_app_here(
    services: Services, team_id: str, name: str | None, view: dict[str, Any]
) -> str:
    """`unknown_app_text` in the form's words."""
    return unknown_app_text(name, await app_names(services, team_id), pick=_pick_app(view))


# --- submission --------------------------------------------------------------------------------

_FIELD_BLOCKS: Final = {
    "message": const.BLOCK_COMPOSE_MESSAGE,
    "title": const.BLOCK_COMPOSE_TITLE,
    "url": const.BLOCK_COMPOSE_URL,
    "image": const.BLOCK_COMPOSE_IMAGE,
    "app": const.BLOCK_COMPOSE_APP,
}


class FormErrors(Exception):
    """Bad fields: block id -> what is wrong and how to fix it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def error_block(field: str, typed: ComposeInput, view: dict[str, Any], message: str = "") -> str:
    """The block showing a refusal of `field` (one that exists in this view)."""
    shown = {block.get("block_id") for block in view.get("blocks") or ()}
    ours = compose_options.error_block(field, message, view)
    if ours is not None:
        return ours
    problem = audience_problem(typed) if field == "audience" else None
    if problem is not None:
        block = problem[0]
    elif field == "audience":
        block = const.BLOCK_COMPOSE_USERS if typed.external_ids else const.BLOCK_COMPOSE_SEGMENTS
    elif field == "when":
        block = const.BLOCK_COMPOSE_IN if typed.when == compose.WHEN_IN else const.BLOCK_COMPOSE_AT
    else:
        block = _FIELD_BLOCKS.get(field, const.BLOCK_COMPOSE_MESSAGE)
    return block if block in shown else const.BLOCK_COMPOSE_MESSAGE


def _due(typed: ComposeInput, timezone: str | None) -> datetime | None:
    """When to send, from the radio buttons and the picker or delay; FormErrors if unusable."""
    if typed.when == compose.WHEN_AT:
        if typed.at is None:
            raise FormErrors({const.BLOCK_COMPOSE_AT: "Pick a date and time, or choose Now."})
        if typed.at <= datetime.now(UTC):
            raise FormErrors({const.BLOCK_COMPOSE_AT: "That time has passed; pick a later one."})
        return typed.at
    if typed.when == compose.WHEN_IN:
        if not typed.in_:
            raise FormErrors(
                {const.BLOCK_COMPOSE_IN: "Type a delay like 10m or 2h, or choose Now."}
            )
        try:
            return parse_in(typed.in_, tz=timezone).utc
        except TimeParseError as error:
            raise FormErrors({const.BLOCK_COMPOSE_IN: str(error)}) from None
    return None


def _draft(
    typed: ComposeInput,
    meta: Meta,
    timezone: str | None,
    view: dict[str, Any],
    template: TemplateRef | None = None,
) -> Draft:
    """The form's values as a send; FormErrors naming each bad field."""
    errors: dict[str, str] = {}
    content = audience = options = None
    due = None
    values = view["state"]["values"]
    try:
        content = SendContent(
            message=typed.message or None,
            title=typed.title,
            url=typed.url,
            image=typed.image,
            template=template,
            **form_options.content_fields(values),
        )
    except SendRejected as error:
        errors[error_block(error.field, typed, view, str(error))] = str(error)
    try:
        options = form_options.delivery_of(values)
    except SendRejected as error:
        errors.setdefault(error_block(error.field, typed, view, str(error)), str(error))
    try:
        audience = _audience(typed)
    except SendRejected as error:
        errors.setdefault(error_block(error.field, typed, view), str(error))
    try:
        due = _due(typed, timezone)
    except FormErrors as error:
        errors.update(error.errors)
    if errors or content is None or audience is None:
        raise FormErrors(errors)
    return Draft(
        app=typed.app or meta.app, content=content, audience=audience, due_at=due, options=options
    )


@dataclass(frozen=True)
class Prepared:
    """A submitted form, checked: who asks, what they typed, and the send it describes."""

    team_id: str
    person: Requester
    typed: ComposeInput
    meta: Meta
    draft: Draft
    view: dict[str, Any]


async def prepare(services: Services, body: dict[str, Any], client: AsyncWebClient) -> Prepared:
    """Who submitted the form (Slack's lookup waits at most LOOKUP_BUDGET) and the send its
    fields describe; FormErrors for bad fields. Nothing is stored."""
    view = body["view"]
    typed = compose.read_compose(view["state"]["values"])
    meta = Meta.of(view)
    try:
        team_id, user_id = interaction_ids(body, services=services, area="send")
        async with asyncio.timeout(LOOKUP_BUDGET):
            person: Requester = await requester(
                services=services,
                client=client,
                team_id=team_id,
                user_id=user_id,
                what="submit the compose form",
            )
    except CommandError as error:
        raise FormErrors({const.BLOCK_COMPOSE_MESSAGE: str(error)}) from None
    except TimeoutError:
        raise FormErrors({const.BLOCK_COMPOSE_MESSAGE: SLACK_TOO_SLOW}) from None
    try:
        template = await form_options.resolve_template(
            services, team_id, typed.app or meta.app, view["state"]["values"], known=meta.template
        )
    except SendRejected as error:
        raise FormErrors({error_block(error.field, typed, view, str(error)): str(error)}) from None
    draft = _draft(typed, meta, person.timezone, view, template)
    return Prepared(team_id, person, typed, meta, draft, view)


async def _submitted(
    services: Services, body: dict[str, Any], client: AsyncWebClient
) -> tuple[Send, Meta]:
    """Check the form and store its send as a draft for the preview (before the ack);
    FormErrors for bad fields.

    The database stores one draft per form and input (`submission_key`): a submission that
    reached another process first gets that draft back, `replayed`; the same form submitted
    again after its preview's Back with other input stores another.

    Slack's lookup waits at most LOOKUP_BUDGET, the store at most its own wait for other
    writers (`commands.send.storing.store`); each refusal says that nothing was sent.
    """
    ready = await prepare(services, body, client)
    team_id, person, typed, meta, draft, view = (
        ready.team_id,
        ready.person,
        ready.typed,
        ready.meta,
        ready.draft,
        ready.view,
    )
    try:
        send = await store(
            services,
            team_id=team_id,
            requester=person,
            draft=draft,
            confirm=False,  # the preview's Send confirms it
            submission=submission_key(view),
        )
    except SendRejected as error:
        text = str(error)
        if error.field == "app":  # removed while the form was open
            text = await unknown_app_here(services, team_id, draft.app, view)
        raise FormErrors({error_block(error.field, typed, view): text}) from None
    except CommandError as error:
        raise FormErrors({const.BLOCK_COMPOSE_MESSAGE: str(error)}) from None
    return send, meta


# --- a recurring send from the form (Repeat) ---------------------------------------------------

_TIMES: Final = re.compile(r"(\d{1,4})\s*(?:x|times?)?", re.IGNORECASE)


def _recurrence(ready: Prepared) -> Recurrence:
    """The form's Repeat, Repeat until and When as a series' rule; FormErrors if unusable."""
    typed = ready.typed
    if typed.when == compose.WHEN_IN:
        raise FormErrors(
            {
                const.BLOCK_COMPOSE_EVERY: "A repeat starts at a date and time: choose At a "
                "date and time for its first time (or Now, for a repeat like 6h)."
            }
        )
    zone = zone_of(ready.person.timezone or "UTC")
    at = None
    if typed.when == compose.WHEN_AT and typed.at is not None:
        at = f"{typed.at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"
    ends = (typed.ends or "").strip()
    counted = _TIMES.fullmatch(ends)
    try:
        return parse_every(
            typed.every or "",
            at=at,
            until=ends if ends and counted is None else None,
            times=counted[1] if counted else None,
            tz=ready.person.timezone,
        )
    except RecurrenceError as error:
        text = str(error)
        if text.startswith(("--until", "--times")):
            block = const.BLOCK_COMPOSE_ENDS
        elif "needs --at" in text or text.startswith("--at"):
            block = const.BLOCK_COMPOSE_AT
            text = "Pick the first time under When (At a date and time): " + text
        else:
            block = const.BLOCK_COMPOSE_EVERY
        raise FormErrors({block: text}) from None


async def _submitted_series(
    services: Services, body: dict[str, Any], client: AsyncWebClient
) -> tuple[Series, Meta, tuple[str, ...]]:
    """Check the form and store its series (before the ack); FormErrors for bad fields."""
    ready = await prepare(services, body, client)
    recurrence = _recurrence(ready)
    draft = ready.draft
    try:
        policy = await policy_of(services, ready.team_id)
        with told_store_errors(ready.team_id, "series"):
            series = await services.series.create(
                team_id=ready.team_id,
                requester_id=ready.person.actor.user_id,
                app_name=draft.app,
                content=draft.content,
                audience=draft.audience,
                recurrence=recurrence,
                approvals_required=approvals_required(policy, draft.audience, is_test=False),
                options=draft.options,
                submission=submission_key(ready.view),  # one series per form, in any process
            )
    except SendRejected as error:
        text = str(error)
        if error.field == "app":  # removed while the form was open
            text = await unknown_app_here(services, ready.team_id, draft.app, ready.view)
        raise FormErrors({error_block(error.field, ready.typed, ready.view): text}) from None
    except CommandError as error:
        raise FormErrors({const.BLOCK_COMPOSE_MESSAGE: str(error)}) from None
    return series, ready.meta, recurrence.notes


SeriesSubmission = tuple[Series, Meta, tuple[str, ...]]


async def _series_once(
    services: Services, forms: Submitted, body: dict[str, Any], client: AsyncWebClient
) -> tuple[SeriesSubmission, bool]:
    """The form's series, stored once per form; (it, whether this request stored it).

    A repeat in this process shares the first one's outcome here; one that reached another
    process gets the series that process stored, `replayed`, from the database.
    """
    stored_here: list[bool] = []

    async def first() -> tuple[SeriesSubmission, float | None]:
        stored_here.append(True)
        return await _submitted_series(services, body, client), SUBMITTED_TTL

    key = _form_key(body)
    if not key[1]:
        submission = await _submitted_series(services, body, client)
        return submission, not submission[0].replayed
    submission = await forms.series.get(key, first)
    return submission, bool(stored_here) and not submission[0].replayed


async def _series_follow_up(
    services: Services, client: AsyncWebClient, submission: SeriesSubmission
) -> None:
    """After the ack: ask the approvers if needed, and confirm the series where asked."""
    series, meta, notes = submission
    reply = answer_where(services, client, series.team_id, series.requester_id, meta.channel)
    await series_commands.confirm(services, series, [escape(note) for note in notes], reply)


async def _finish_series_late(
    services: Services,
    body: dict[str, Any],
    client: AsyncWebClient,
    outcome: asyncio.Task[tuple[SeriesSubmission, bool]],
) -> None:
    """A series form answered before it was stored: confirm it, or say why it was not."""
    try:
        submission, stored_here = await outcome
    except FormErrors as error:
        team_id, user_id = interaction_ids(body)
        channel = Meta.of(body.get("view")).channel
        why = " ".join(error.errors.values())
        reply = answer_where(services, client, team_id, user_id, channel)
        await reply(f"Your recurring send was not stored: {why}", [])
        return
    if stored_here:
        await _series_follow_up(services, client, submission)


async def within_ack_budget(
    services: Services,
    ack: AsyncAck,
    work: Coroutine[Any, Any, T],
    *,
    late: Callable[[asyncio.Task[T]], Coroutine[Any, Any, None]],
) -> T | None:
    """Run a form submission's `work` apart from its request, so Slack gets its answer within
    ACK_BUDGET whatever happens; a store that takes longer is never cut short (it may be
    committing). Its result, for the caller to answer with; None once Slack was answered
    here: with the form's errors (FormErrors), or, when `work` outlasts the budget, with the
    form closed and `late(task)` telling what came of it after the ack.
    """
    task = services.tasks.spawn(work, name="form submission")
    done, _ = await asyncio.wait({task}, timeout=ACK_BUDGET)
    if not done:
        await ack()
        services.after_ack(late(task), respond=None, kind="view_submission")
        return None
    try:
        return task.result()
    except FormErrors as error:
        await ack(response_action="errors", errors=error.errors)
        return None


async def _on_series_submit(
    services: Services,
    forms: Submitted,
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    """The form submitted with Repeat: store the series within the ack's budget, or close
    the form and tell what came of it after."""
    outcome = await within_ack_budget(
        services,
        ack,
        _series_once(services, forms, body, client),
        late=lambda task: _finish_series_late(services, body, client, task),
    )
    if outcome is None:
        return
    submission, stored_here = outcome
    await ack()
    if stored_here:
        follow = _series_follow_up(services, client, submission)
        services.after_ack(follow, respond=None, kind="view_submission")


def submission_key(view: dict[str, Any]) -> str | None:
    """`VIEWID:digest`: the form and everything in it as submitted (None without a view id):
    its typed fields, its template, languages and delivery options, the app it is for.

    What was typed rather than the draft: a delay (`2h`) gives a new due time each time it is
    read, and a second press of the same form must still find the first one's draft.
    """
    if not view.get("id"):
        return None
    values = (view.get("state") or {}).get("values") or {}
    fields = {"values": values, "metadata": view.get("private_metadata") or ""}
    text = json.dumps(fields, sort_keys=True, default=str)
    return f"{view['id']}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


SLACK_TOO_SLOW: Final = "Slack was slow to say who you are; nothing was sent. Press Send again."

SUBMITTED_TTL: Final = 900.0
"""Seconds a form that produced a send is remembered, so submitting it again sends nothing."""

Submission = tuple[Send, Meta]


@dataclass(frozen=True)
class Submitted:
    """The forms this app took, by (team, submission key), each kept `SUBMITTED_TTL`: a
    second press of Send shares the first one's outcome. Made by `register`, one per app."""

    sends: Expiring[tuple[str, str], Submission] = field(default_factory=Expiring)
    series: Expiring[tuple[str, str], SeriesSubmission] = field(default_factory=Expiring)


def _form_key(body: dict[str, Any]) -> tuple[str, str]:
    """(team, submission key): one modal and its input, however often Send is pressed."""
    view = body.get("view") or {}
    team = (body.get("team") or {}).get("id") or view.get("team_id") or ""
    return str(team), submission_key(view) or ""


async def _submit_once(
    services: Services, forms: Submitted, body: dict[str, Any], client: AsyncWebClient
) -> tuple[Submission, bool]:
    """The submission's send, stored once per form; (it, whether this request stored it).

    A second press of Send on the same form (a double click, or a press after a slow
    answer) shares the first one's outcome here without asking the database; one that
    reached another process is caught by the database (`_submitted`).
    """
    stored_here: list[bool] = []

    async def first() -> tuple[Submission, float | None]:
        stored_here.append(True)
        return await _submitted(services, body, client), SUBMITTED_TTL

    key = _form_key(body)
    if not key[1]:  # no view id to know the form by (never from Slack): store it
        return await _submitted(services, body, client), True
    return await forms.sends.get(key, first), bool(stored_here)


async def _finish_late(
    services: Services,
    body: dict[str, Any],
    client: AsyncWebClient,
    outcome: asyncio.Task[tuple[Submission, bool]],
) -> None:
    """A submission answered before its draft was stored: the preview follows as a message
    (with Send and Cancel), or why nothing was stored."""
    try:
        (send, meta), stored_here = await outcome
    except FormErrors as error:
        team_id, user_id = interaction_ids(body)
        channel = Meta.of(body.get("view")).channel
        why = " ".join(error.errors.values())
        reply = answer_where(services, client, team_id, user_id, channel)
        await reply(f"Your notification was not sent: {why}", [])
        return
    if stored_here:
        reply = answer_where(services, client, send.team_id, send.requester_id, meta.channel)
        await preview_message(services, send, reply)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the compose form: app and audience changes, its submission, its preview."""
    forms = Submitted()

    async def on_app(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(_app_changed(services, body, client), respond=None, kind="block_actions")

    async def on_audience(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(
            _audience_changed(services, body, client), respond=None, kind="block_actions"
        )

    async def on_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        if compose.read_compose(body["view"]["state"]["values"]).every:
            await _on_series_submit(services, forms, ack, body, client)
            return
        outcome = await within_ack_budget(  # a late one: the preview follows in a message
            services,
            ack,
            _submit_once(services, forms, body, client),
            late=lambda task: _finish_late(services, body, client, task),
        )
        if outcome is None:
            return
        (send, meta), _ = outcome
        shown = await previewing.preview_of(services, send, channel=meta.channel)
        await ack(response_action="push", view=shown.view)
        services.after_ack(shown.fill_in(client), respond=None, kind="view_submission")

    app.action(const.ACTION_COMPOSE_APP)(on_app)
    app.action(const.ACTION_COMPOSE_AUDIENCE)(on_audience)
    app.view(const.CALLBACK_COMPOSE)(on_submit)
    form_options.register(app, services)
    previewing.register(app, services)
