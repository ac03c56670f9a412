"""`/push user EXTERNAL_ID [--app NAME]`: a OneSignal user's properties, aliases and devices.

A customer's data: for senders, responders and admins only (a refusal is audited as
`user.denied`); each lookup is in the audit log, without the user's data.
"""

from __future__ import annotations

from typing import Final

from bot import const
from bot.onesignal.errors import (
    Forbidden,
    NotFound,
    OneSignalAPIError,
    OneSignalError,
    OneSignalTransportError,
    RateLimited,
    Unauthorized,
)
from bot.onesignal.models import User
from bot.workspaces import (
    AppClient,
    AppNotFound,
    InvalidInput,
    KeyUnreadable,
    LookupOutcome,
    validate_external_id,
)
from commands._format import span, unknown_app_text
from commands._parsing import parse_options
from commands.access import resolve_actor, why_not
from commands.context import CommandContext, CommandError, Subcommand
from commands.denials import Denial, deny
from commands.help import usage
from commands.views.user import user_blocks, user_headline

C = const.SLASH_COMMAND
ALIAS_LABEL: Final = "external_id"


async def handle(ctx: CommandContext) -> None:
    """Look the user up in the chosen app (the default one without --app) and show them."""
    external_id, app_name = parse(ctx.args)
    await may_look_up(ctx, external_id)
    app = await app_client(ctx, app_name)
    user = await _look_up(ctx, app, external_id)
    await ctx.reply(
        user_headline(external_id, app.name), blocks=user_blocks(external_id, app.name, user)
    )


NOT_ALLOWED: Final = (
    f"`{C} user` shows a customer's data, so it is for PushOps senders, responders and admins. "
    f"Ask a PushOps admin for the sender or responder role in `{C} setup`."
)
NOT_ALLOWED_GUEST: Final = (
    f"`{C} user` shows a customer's data: guests of this workspace may use it once a PushOps "
    f"admin gives them the sender or responder role by name in `{C} setup`."
)


async def may_look_up(ctx: CommandContext, external_id: str) -> None:
    """Refuse (audited as `user.denied`) who is no sender, responder or admin."""
    actor = await resolve_actor(ctx)
    if actor.can_look_up_users():
        return
    why = why_not(actor, "no_role")
    denial = Denial(ctx.team_id, ctx.user_id, "user", "look up a user", why, external_id[:200])
    raise deny(ctx.services, denial, NOT_ALLOWED_GUEST if actor.is_guest else NOT_ALLOWED)


def parse(args: tuple[str, ...]) -> tuple[str, str | None]:
    """The external id and the `--app` name (None: the default app)."""
    grammar = usage(const.SUB_USER)
    options = parse_options(args, single=("--app",), usage=grammar)
    if len(options.positional) != 1:
        what = "Which user?" if not options.positional else "Give one external id."
        raise CommandError(f"{what} Give their external id.\nUsage: {grammar}")
    try:
        external_id = validate_external_id(options.positional[0])
    except InvalidInput as error:
        raise CommandError(f"{error}\nUsage: {grammar}") from None
    return external_id, options.one("--app")


async def app_client(ctx: CommandContext, name: str | None) -> AppClient:
    """A client of the workspace's app `name` (or default app); CommandError when none."""
    workspaces = ctx.services.workspaces
    try:
        return await workspaces.app_client(ctx.team_id, name)
    except AppNotFound:
        names = await workspaces.app_names(ctx.team_id)
    except KeyUnreadable:
        raise CommandError(
            f"The REST API key of app {name or 'default'} cannot be read with this "
            f"PushOps's secret key. An admin can enter it again in `{C} setup`."
        ) from None
    raise CommandError(unknown_app_text(name, names))


async def _look_up(ctx: CommandContext, app: AppClient, external_id: str) -> User:
    """The user as OneSignal has them; every attempt that reached OneSignal is audited."""
    try:
        user = await app.client.fetch_user(app.onesignal_app_id, ALIAS_LABEL, external_id)
    except OneSignalError as error:
        outcome: LookupOutcome = "not_found" if isinstance(error, NotFound) else "failed"
        await _audit(ctx, app.name, external_id, outcome)
        raise CommandError(onesignal_problem(error, app.name, external_id)) from None
    await _audit(ctx, app.name, external_id, "ok")
    return user


async def _audit(
    ctx: CommandContext, app_name: str, external_id: str, outcome: LookupOutcome
) -> None:
    await ctx.services.workspaces.record_user_lookup(
        team_id=ctx.team_id,
        actor=ctx.user_id,
        external_id=external_id,
        app_name=app_name,
        outcome=outcome,
    )


def onesignal_problem(error: OneSignalError, app_name: str, external_id: str) -> str:
    """What to tell the person when OneSignal did not give the user: plain text, escaped
    once by the reply (it becomes a CommandError)."""
    app = f"app *{app_name}*"
    if isinstance(error, NotFound):
        return (
            f"OneSignal has no user with external id {span(external_id, limit=130)} in {app}. "
            "External ids are case-sensitive: check it, or look in another app with --app NAME."
        )
    if isinstance(error, Unauthorized | Forbidden):
        return (
            f"OneSignal refused the REST API key of {app}. An admin can replace it in `{C} setup`."
        )
    if isinstance(error, RateLimited):
        return "OneSignal is limiting how often PushOps may ask right now; try again in a minute."
    if isinstance(error, OneSignalTransportError):
        return "OneSignal could not be reached; try again in a minute."
    if isinstance(error, OneSignalAPIError):
        return f"OneSignal answered with HTTP {error.status} instead of the user; try again later."
    return "OneSignal's answer could not be read; try again later."


SUBCOMMAND = Subcommand(name=const.SUB_USER, handle=handle)
