"""`/push setup` (admins): one modal to add or replace OneSignal apps, choose the default app and
the log channel, remove apps, give roles and set the approval policy.

Flow: the command opens the home view right after the ack (its trigger_id dies in 3 s). A
button acks at once, then re-checks that the clicker is an admin and updates the modal. A bad
field is refused inline (`response_action="errors"`) before anything is saved.

Checking a REST API key takes a round trip to OneSignal, which must never run before an ack
(docs/design.md invariant 1) and may take longer than Slack's 3 s. So the app form is acked with
`response_action="update"` to a "checking…" view, and the check continues in the background;
then `views.update` shows the home (saved) or the form again with the problem under the
field. The key lives only in that task's memory until it is sealed in the database: no view,
metadata, error or log line ever carries it. The roles and approvals forms need no outside
call but the (cached) admin check, so they are saved before their ack: Slack's answer is
awaited for at most a second and other writers for at most another, and either way a form
that is refused says that nothing was saved. A save is never cut short once it may commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.credentials import CredentialError, CredentialProblem, verify_onesignal_app
from bot.default_app import DEFAULT_APP_NAME
from bot.policy import ApprovalPolicy, PolicyError, Role
from bot.services import Services
from bot.workspaces import (
    AppInUse,
    AppNotFound,
    DuplicateAppName,
    WriteBusy,
    limited_lock_wait,
)
from commands._format import code, escape
from commands._parsing import parse_options
from commands.access import (
    interaction_enterprise_id,
    interaction_ids,
    require_admin,
    slack_error,
)
from commands.context import CommandContext, CommandError, Subcommand
from commands.help import usage
from commands.setup_forms import (
    AppEntry,
    FormErrors,
    RoleChange,
    Values,
    parse_app_form,
    parse_policy_form,
    parse_roles_form,
    replaced_app,
)
from commands.views.limits import listing
from commands.views.setup import (
    AppFormState,
    AppRow,
    SetupState,
    View,
    app_form_view,
    checking_view,
    home_view,
    message_view,
    policy_form_view,
    roles_form_view,
    subject_mention,
)

log = logging.getLogger(__name__)

ACTION: Final = f"set PushOps up (`{const.SLASH_COMMAND} setup`)"
"""What a non-admin is told they cannot do."""

_PROBLEM_FIELD: Final[Mapping[CredentialProblem, str]] = {
    CredentialProblem.WRONG_KEY: const.BLOCK_SETUP_APP_KEY,
    CredentialProblem.UNKNOWN_APP: const.BLOCK_SETUP_APP_ID,
    CredentialProblem.UNREACHABLE: "",  # the whole form
}


# --- the command -----------------------------------------------------------------------------


async def handle(ctx: CommandContext) -> None:
    """Refuse non-admins; open the setup home."""
    if parse_options(ctx.args, usage=usage(const.SUB_SETUP)).positional:
        raise CommandError(
            f"`{const.SLASH_COMMAND} setup` takes nothing after it: it opens a form.\n"
            f"Usage: {usage(const.SUB_SETUP)}"
        )
    # Users.info (when asked, cached for a minute) and one database read come before
    # views.open; both are quick, well inside the trigger's 3 s.
    await require_admin(ctx, action=ACTION, what="open setup")
    state = await load_state(ctx.services, ctx.team_id)
    if not ctx.trigger_id:
        raise CommandError("Slack sent no way to open a form; run the command again.")
    try:
        await ctx.client.views_open(trigger_id=ctx.trigger_id, view=home_view(state))
    except SlackApiError as error:
        raise CommandError(
            f"Slack did not open the setup form ({slack_error(error)}); "
            f"run `{const.SLASH_COMMAND} setup` again."
        ) from None


SUBCOMMAND = Subcommand(name=const.SUB_SETUP, handle=handle)


async def load_state(services: Services, team_id: str) -> SetupState:
    """What the home shows for the workspace."""
    snapshot = await services.workspaces.snapshot(team_id)
    workspace = snapshot.workspace
    settings_app = bool(services.settings.onesignal_app_id and services.settings.slack_bot_token)
    rows = tuple(
        AppRow(
            a.name, a.onesignal_app_id, a.is_default, settings_app and a.name == DEFAULT_APP_NAME
        )
        for a in snapshot.apps
    )
    holders: dict[Role, tuple[str, ...]] = {}
    for member in snapshot.members:
        holders[member.role] = (*holders.get(member.role, ()), member.subject_id)
    policy, problem = ApprovalPolicy(), None
    try:
        policy = ApprovalPolicy.from_settings(workspace.settings if workspace else {})
    except PolicyError as error:
        problem = str(error)
    return SetupState(
        apps=rows,
        log_channel_id=workspace.log_channel_id if workspace else None,
        policy=policy,
        policy_problem=problem,
        members=holders,
    )


# --- buttons in the modal ----------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """A click in the setup modal by an admin (checked), with what it needs to act."""

    team_id: str
    user_id: str
    action: Mapping[str, Any]
    services: Services
    enterprise_id: str | None  # the workspace's Grid org, kept on its row

    @property
    def value(self) -> str:
        """The clicked button's value (an app's name)."""
        return str(self.action.get("value") or "")

    async def home(self, notice: str | None = None, *, ok: bool = True) -> View:
        """The home, fresh from the database, with what just happened."""
        return home_view(await load_state(self.services, self.team_id), notice=notice, ok=ok)


ClickWork = Callable[[Click], Awaitable[View]]


async def _add_app(click: Click) -> View:
    return app_form_view(AppFormState())


async def _replace_app(click: Click) -> View:
    app = await click.services.workspaces.app(click.team_id, click.value)
    if app is None:
        return await _app_gone(click)
    return app_form_view(AppFormState(replace=app.name, app_id=app.onesignal_app_id))


async def _make_default(click: Click) -> View:
    try:
        await click.services.workspaces.set_default_app(
            team_id=click.team_id, name=click.value, actor=click.user_id
        )
    except AppNotFound:
        return await _app_gone(click)
    return await click.home(f"*{escape(click.value)}* is now the default app.")


async def _remove_app(click: Click) -> View:
    try:
        await click.services.workspaces.remove_app(
            team_id=click.team_id, name=click.value, actor=click.user_id
        )
    except AppNotFound:
        return await _app_gone(click)
    except AppInUse as error:
        return await click.home(escape(str(error)), ok=False)
    return await click.home(f"Removed *{escape(click.value)}* and its key.")


async def _app_gone(click: Click) -> View:
    """The home again when the app clicked on was removed meanwhile (another admin, a
    second tab): the apps listed under the notice are the ones there are now."""
    gone = f"There is no OneSignal app named {code(click.value)} any more"
    return await click.home(f"{gone}; the apps below are the ones there are now.", ok=False)


async def _set_log_channel(click: Click) -> View:
    channel = str(click.action.get("selected_conversation") or "")
    if not channel:
        return await click.home()
    await _set_log(click, channel)
    return await click.home(
        f"Results of sends will be posted in <#{channel}>. Invite PushOps there "
        "(`/invite @PushOps`) so it can post."
    )


async def _log_off(click: Click) -> View:
    await _set_log(click, None)
    return await click.home("Results of sends are no longer posted in a channel.")


async def _set_log(click: Click, channel_id: str | None) -> None:
    await click.services.workspaces.set_log_channel(
        team_id=click.team_id,
        enterprise_id=click.enterprise_id,
        actor=click.user_id,
        channel_id=channel_id,
    )


async def _roles_form(click: Click) -> View:
    return roles_form_view((await load_state(click.services, click.team_id)).members)


async def _name_senders(click: Click) -> View:
    return roles_form_view((await load_state(click.services, click.team_id)).members, Role.SENDER)


async def _policy_form(click: Click) -> View:
    return policy_form_view((await load_state(click.services, click.team_id)).policy)


async def _back(click: Click) -> View:
    return await click.home()


CLICKS: Final[Mapping[str, ClickWork]] = {
    const.ACTION_SETUP_ADD_APP: _add_app,
    const.ACTION_SETUP_REPLACE_APP: _replace_app,
    const.ACTION_SETUP_DEFAULT_APP: _make_default,
    const.ACTION_SETUP_REMOVE_APP: _remove_app,
    const.ACTION_SETUP_LOG_CHANNEL: _set_log_channel,
    const.ACTION_SETUP_LOG_OFF: _log_off,
    const.ACTION_SETUP_ROLES: _roles_form,
    const.ACTION_SETUP_NAME_SENDERS: _name_senders,
    const.ACTION_SETUP_POLICY: _policy_form,
    const.ACTION_SETUP_BACK: _back,
}
"""What each button (or picker) of the setup modal does; each returns the next view."""


def _click_listener(services: Services, work: ClickWork) -> Callable[..., Awaitable[None]]:
    async def on_click(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(_clicked(services, body, client, work), respond=None, kind="setup")

    return on_click


async def _clicked(
    services: Services, body: dict[str, Any], client: AsyncWebClient, work: ClickWork
) -> None:
    """Re-check the admin, do the click's work, show the next view."""
    view_id = str((body.get("view") or {}).get("id") or "")
    action = (body.get("actions") or [{}])[0]
    try:
        team_id, user_id = interaction_ids(body, services=services, area="setup")
        await require_admin(
            team_id=team_id,
            user_id=user_id,
            client=client,
            services=services,
            action=ACTION,
            what=f"click {action.get('action_id') or 'a button'}"[:100],
        )
        view = await work(
            Click(team_id, user_id, action, services, interaction_enterprise_id(body))
        )
    except CommandError as error:
        view = message_view(str(error))
    await _show(client, view_id, view)


async def _show(client: AsyncWebClient, view_id: str, view: View) -> None:
    """Replace the modal's content; a modal closed meanwhile is fine."""
    try:
        await client.views_update(view_id=view_id, view=view)
    except SlackApiError as error:
        log.info("setup view %s not updated: %s", view_id, slack_error(error))


@dataclass(frozen=True)
class Admin:
    """An admin (checked) saving a form, and the workspace it is saved for."""

    team_id: str
    user_id: str
    enterprise_id: str | None  # the workspace's Grid org, kept on its row: a form may be
    # the workspace's first write


async def _open_senders_form(
    services: Services, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
) -> None:
    """The help's "Name senders": the roles form in a new modal, Sender chosen (admins)."""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="setup")
        await require_admin(
            team_id=team_id,
            user_id=user_id,
            client=client,
            services=services,
            action=ACTION,
            what="open the roles form",
        )
        members = (await load_state(services, team_id)).members
        await client.views_open(
            trigger_id=str(body.get("trigger_id") or ""),
            view=roles_form_view(members, Role.SENDER),
        )
    except CommandError as error:
        await respond(text=str(error), response_type="ephemeral", replace_original=False)
    except SlackApiError as error:
        text = (
            f"Slack did not open the roles form ({slack_error(error)}); name senders in "
            f"`{const.SLASH_COMMAND} setup`."
        )
        await respond(text=text, response_type="ephemeral", replace_original=False)


# --- the app form: checked with OneSignal after the ack --------------------------------------


def _app_submit_listener(services: Services) -> Callable[..., Awaitable[None]]:
    async def on_submit(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            # The admin first: whether an app name is taken is for admins only to learn.
            admin = await _admin_in_time(services, body, client, what="save an app")
            entry = parse_app_form(view["state"]["values"], view.get("private_metadata", ""))
            await _check_name(services, admin.team_id, entry)
        except CommandError as error:
            await ack(response_action="update", view=message_view(str(error)))
            return
        except FormErrors as error:
            await ack(response_action="errors", errors=error.errors)
            return
        except TimeoutError:
            await ack(response_action="errors", errors={_app_first_block(view): SLACK_TOO_SLOW})
            return
        await ack(response_action="update", view=checking_view(entry.name, entry.app_id))
        work = _check_and_save(services, client, str(view["id"]), admin, entry)
        services.after_ack(work, respond=None, kind="setup")

    return on_submit


def _app_first_block(view: dict[str, Any]) -> str:
    """The app form's first field: its name, or (replacing a key) its app id."""
    replacing = replaced_app(str(view.get("private_metadata") or ""))
    return const.BLOCK_SETUP_APP_ID if replacing else const.BLOCK_SETUP_APP_NAME


async def _check_name(services: Services, team_id: str, entry: AppEntry) -> None:
    """A new app's name must be free; a replaced app must still exist (a local read)."""
    app = await services.workspaces.app(team_id, entry.name)
    if app is not None and not entry.replace:
        raise FormErrors(
            {
                const.BLOCK_SETUP_APP_NAME: f"An app named {entry.name} exists already: "
                "use its Replace key button, or choose another name."
            }
        )
    if app is None and entry.replace:
        raise FormErrors(
            {const.BLOCK_SETUP_APP_ID: f"The app {entry.name} was removed meanwhile; go Back."}
        )


async def _check_and_save(
    services: Services,
    client: AsyncWebClient,
    view_id: str,
    admin: Admin,
    entry: AppEntry,
) -> None:
    """Re-check the admin, ask OneSignal about the key, save it; show what came of it."""
    try:
        await require_admin(
            team_id=admin.team_id,
            user_id=admin.user_id,
            client=client,
            services=services,
            action=ACTION,
            what="save an app",
        )
        await verify_onesignal_app(
            services.onesignal, app_id=entry.app_id, rest_api_key=entry.api_key
        )
        view = await _save_app(services, admin, entry)
    except CommandError as error:
        view = message_view(str(error))
    except CredentialError as error:
        view = app_form_view(_form_again(entry, {_PROBLEM_FIELD[error.problem]: str(error)}))
    await _show(client, view_id, view)


def _form_again(entry: AppEntry, errors: Mapping[str, str]) -> AppFormState:
    """The form as it was submitted, but for the key, with `errors` under their fields."""
    return AppFormState(
        replace=entry.name if entry.replace else None,
        name=entry.name,
        app_id=entry.app_id,
        make_default=entry.make_default,
        errors=errors,
    )


async def _save_app(services: Services, admin: Admin, entry: AppEntry) -> View:
    team_id = admin.team_id
    try:
        is_default = await services.workspaces.add_app(
            team_id=team_id,
            enterprise_id=admin.enterprise_id,
            actor=admin.user_id,
            name=entry.name,
            onesignal_app_id=entry.app_id,
            api_key=entry.api_key,
            make_default=entry.make_default,
            replace=entry.replace,
        )
    except DuplicateAppName as error:  # added by someone else since the form was checked
        return app_form_view(_form_again(entry, {const.BLOCK_SETUP_APP_NAME: str(error)}))
    notice = f"Saved *{escape(entry.name)}*: OneSignal accepted its REST API key."
    if is_default:
        notice += " It is the default app."
    state = await load_state(services, team_id)
    return home_view(state, notice=notice)


# --- the roles and approvals forms: saved before the ack ---------------------------------------


FormWork = Callable[[Services, Admin, Values], Awaitable[str]]
"""Saves a checked form for (services, who saves it, values); returns the notice."""


def _local_submit_listener(
    services: Services, work: FormWork, first_block: str, what: str
) -> Callable[..., Awaitable[None]]:
    async def on_submit(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            admin = await _admin_in_time(services, body, client, what=what)
            with limited_lock_wait(SAVE_WAIT):
                notice = await work(services, admin, view["state"]["values"])
        except FormErrors as error:
            await ack(response_action="errors", errors=error.errors)
            return
        except CommandError as error:
            await ack(response_action="update", view=message_view(str(error)))
            return
        except TimeoutError:
            await ack(response_action="errors", errors={first_block: SLACK_TOO_SLOW})
            return
        except WriteBusy:
            await ack(response_action="errors", errors={first_block: DATABASE_BUSY})
            return
        # Saved: from here on nothing may say otherwise. The home is one quick read.
        state = await load_state(services, admin.team_id)
        await ack(response_action="update", view=home_view(state, notice=notice))

    return on_submit


async def _admin_in_time(
    services: Services, body: dict[str, Any], client: AsyncWebClient, *, what: str
) -> Admin:
    """The admin saving a form (`what`: which, for the audit of a refusal); TimeoutError when
    Slack takes over LOOKUP_BUDGET to say."""
    team_id, user_id = interaction_ids(body, services=services, area="setup")
    async with asyncio.timeout(LOOKUP_BUDGET):
        await require_admin(
            team_id=team_id,
            user_id=user_id,
            client=client,
            services=services,
            action=ACTION,
            what=what,
        )
    return Admin(team_id, user_id, interaction_enterprise_id(body))


LOOKUP_BUDGET: Final = 1.0
"""Seconds Slack may take to say whether the person saving a form is an admin (the form is
saved before its ack, and Slack waits 3 s for that)."""

SAVE_WAIT: Final = 1.0
"""Seconds a form's save may wait for other writers before it gives up having saved nothing."""

SLACK_TOO_SLOW: Final = (
    "Slack was slow to say whether you are an admin; nothing was saved. Save again."
)
DATABASE_BUSY: Final = "PushOps is busy; nothing was saved. Save again in a moment."
NOTICE_NAMES: Final = 1000
"""Characters of the people and groups a saved roles form names; the rest are counted."""


async def _save_roles(services: Services, admin: Admin, values: Values) -> str:
    change = parse_roles_form(values)
    changed = await services.workspaces.change_roles(
        team_id=admin.team_id,
        enterprise_id=admin.enterprise_id,
        actor=admin.user_id,
        role=change.role,
        give=change.give,
        subjects=change.subjects,
    )
    return roles_notice(change, changed)


def roles_notice(change: RoleChange, changed: list[str]) -> str:
    """What the roles form did, in a sentence."""
    role = change.role.value
    if not changed:
        if len(change.subjects) == 1:
            who = subject_mention(change.subjects[0])
            held = "already held" if change.give else "did not hold"
            return f"Nothing changed: {who} {held} the {role} role."
        holders = "all of them already" if change.give else "none of them"
        return f"Nothing changed: {holders} held the {role} role."
    who = listing(changed, NOTICE_NAMES, render=subject_mention)
    gives, takes = (
        ("now holds", "no longer holds") if len(changed) == 1 else ("now hold", "no longer hold")
    )
    return f"{who} {gives if change.give else takes} the {role} role."


async def _save_policy(services: Services, admin: Admin, values: Values) -> str:
    policy = parse_policy_form(values)
    await services.workspaces.set_policy(
        team_id=admin.team_id, enterprise_id=admin.enterprise_id, actor=admin.user_id, policy=policy
    )
    return "Saved the approval policy."


# --- wiring ------------------------------------------------------------------------------------


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the setup modal's buttons and forms."""
    for action_id, work in CLICKS.items():
        app.action(action_id)(_click_listener(services, work))

    async def on_help_name_senders(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        opening = _open_senders_form(services, body, client, respond)
        services.after_ack(opening, respond=respond, kind="block_actions")

    app.action(const.ACTION_HELP_NAME_SENDERS)(on_help_name_senders)
    app.view(const.CALLBACK_SETUP_APP)(_app_submit_listener(services))
    app.view(const.CALLBACK_SETUP_ROLES)(
        _local_submit_listener(services, _save_roles, const.BLOCK_SETUP_ROLE, "save roles")
    )
    app.view(const.CALLBACK_SETUP_POLICY)(
        _local_submit_listener(
            services, _save_policy, const.BLOCK_SETUP_POLICY_MODE, "save the approval policy"
        )
    )
