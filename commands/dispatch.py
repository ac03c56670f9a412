"""The `/push` listener: parse and acknowledge at once, then run the subcommand's work.

Invariant 1 (acknowledge first): before `ack()` only parsing and a subcommand's optional
`before_ack` (fast, local, its waits bounded by itself) run. The rest runs after the ack as a
tracked task of `services.tasks` (`Services.after_ack`), so it is neither garbage-collected
nor cut off at shutdown, and its unexpected errors reach the one reporter of bot.errors.

A `before_ack` is never cancelled: it may be storing a send, and one cut short could have
committed or not. When it takes longer than `ACK_BUDGET`, Slack gets its ack anyway and the
`before_ack` goes on; its outcome is answered after the ack like any other.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Future
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import replace
from functools import partial
from typing import Any, Final

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.services import Services
from commands import help
from commands._format import code, escape
from commands._parsing import split_command, unescape_slack
from commands.context import CommandContext, CommandError, Handler, Subcommand

ACK_BUDGET = 2.0
"""Seconds the ack waits for a `before_ack`; Slack shows an error to the user after 3 s."""

log = logging.getLogger(__name__)

BRAKES: Final = frozenset({const.SUB_CANCEL})
"""Subcommands whose work after the ack never lets other requests' acks go first."""

Listener = Callable[..., Awaitable[None]]
Work = Callable[[], Coroutine[Any, Any, None]]


def build_listener(subcommands: Iterable[Subcommand], services: Services) -> Listener:
    """The Bolt listener for `/push`, routing to `subcommands` by name."""
    table = {sub.name: sub for sub in subcommands}

    async def on_push(
        ack: AsyncAck,
        command: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        logger: logging.Logger,
    ) -> None:
        try:
            work, name = await _prepare(table, services, command, respond, client, logger)
        finally:
            # Even when preparing failed unexpectedly: Slack gets its ack, the error handler
            # then apologizes through response_url.
            await ack()
        brake = name in BRAKES
        services.after_ack(work(), respond=respond, kind="command", acks_first=not brake)

    return on_push


async def _prepare(
    table: dict[str, Subcommand],
    services: Services,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    logger: logging.Logger,
) -> tuple[Work, str]:
    """Parse the command and run its `before_ack`; the work for after the ack, and the
    subcommand's name ("" when the words do not parse)."""
    text = unescape_slack(str(command.get("text") or ""))
    ctx = CommandContext(
        subcommand="",
        args=(),
        text=text,
        team_id=str(command.get("team_id") or ""),
        enterprise_id=command.get("enterprise_id") or None,
        user_id=str(command.get("user_id") or ""),
        channel_id=command.get("channel_id") or None,
        trigger_id=command.get("trigger_id") or None,
        respond=respond,
        client=client,
        services=services,
        logger=logger,
    )
    try:
        name, args = split_command(text)
    except CommandError as e:
        services.metrics.commands.labels(subcommand="unparsable").inc()
        return partial(_reply_error, ctx, e), ""
    ctx = replace(ctx, subcommand=name or const.SUB_HELP, args=args)
    sub = table.get(ctx.subcommand)
    services.metrics.commands.labels(subcommand=sub.name if sub else "unknown").inc()
    if sub is None:
        return partial(_reply_unknown, ctx), ctx.subcommand
    return await _prepared(services, sub, ctx), sub.name


async def _prepared(services: Services, sub: Subcommand, ctx: CommandContext) -> Work:
    """Run the subcommand's `before_ack` (never cut short); the work for after the ack."""
    if sub.before_ack is None:
        return partial(_run, sub.handle, ctx)
    running = services.tasks.spawn(_awaited(sub.before_ack(ctx)), name=f"before-ack-{sub.name}")
    done, _ = await asyncio.wait({running}, timeout=ACK_BUDGET)
    if not done:
        log.warning("/push %s: preparing took over %.1f s; acked first", sub.name, ACK_BUDGET)
        return partial(_finish_late, sub.handle, ctx, running)
    try:
        prepared = running.result()
    except CommandError as e:
        return partial(_reply_error, ctx, e)
    return partial(_run, sub.handle, replace(ctx, prepared=prepared))


async def _awaited(preparing: Awaitable[object]) -> object:
    return await preparing


async def _finish_late(handle: Handler, ctx: CommandContext, running: Future[object]) -> None:
    """After an ack that could not wait for `before_ack`: its outcome, then the handler."""
    try:
        prepared = await running
    except CommandError as e:
        await _reply_error(ctx, e)
        return
    await _run(handle, replace(ctx, prepared=prepared))


async def _run(handle: Handler, ctx: CommandContext) -> None:
    """Run a handler; a CommandError it raises becomes the reply."""
    try:
        await handle(ctx)
    except CommandError as e:
        await _reply_error(ctx, e)


async def _reply_error(ctx: CommandContext, error: CommandError) -> None:
    message = escape(str(error))
    await ctx.reply(f"{message}\nSee `{const.SLASH_COMMAND} help` for every command.")


async def _reply_unknown(ctx: CommandContext) -> None:
    """An unknown subcommand: say so, then show the help."""
    typed = code(f"{const.SLASH_COMMAND} {ctx.subcommand}")
    await help.reply_with_help(ctx, f"I don't know {typed}. Here is what I can do:")
