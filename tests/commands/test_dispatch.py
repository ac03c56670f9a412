"""The /push dispatcher with subcommands of the test's own: work before and after the ack,
refusals as replies, unexpected errors as apologies."""

import asyncio
import contextlib
import time

import pytest
from slack_bolt.async_app import AsyncApp

from bot import const
from bot.app import ACK_WHEN_LISTENER_RETURNS
from bot.services import Services
from bot.settings import Settings
from commands.context import CommandContext, CommandError, Subcommand
from commands.dispatch import ACK_BUDGET, build_listener
from storage.crypto import KeyRing
from storage.db import Database
from tests.plugins.slack import PushOps, ServeFactory, default_services

SLACK_PATIENCE = 3.0
"""Seconds Slack waits for an ack before it shows the user an error."""


def _app(settings: Settings, services: Services, *subcommands: Subcommand) -> AsyncApp:
    """A Bolt app with only `subcommands`, set as `bot.app.build_app` sets the real one."""
    assert settings.slack_bot_token and settings.slack_signing_secret
    app = AsyncApp(
        token=settings.slack_bot_token.get_secret_value(),
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=ACK_WHEN_LISTENER_RETURNS,
    )
    app.client.base_url = settings.slack_api_url
    app.command(const.SLASH_COMMAND)(build_listener(subcommands, services))
    return app


@pytest.fixture
def serve_with(
    serve_pushops: ServeFactory,
    slack_settings: Settings,
    sqlite_database: Database,
    keyring: KeyRing,
) -> ServeFactory:
    def serve(*subcommands: Subcommand) -> contextlib.AbstractAsyncContextManager[PushOps]:
        services = default_services(slack_settings, sqlite_database, keyring)
        app = _app(slack_settings, services, *subcommands)
        return serve_pushops(slack_settings, services=services, app=app)

    return serve


async def test_before_ack_result_reaches_the_handler_with_the_parsed_words(serve_with):
    seen: list[CommandContext] = []

    async def remember(ctx: CommandContext) -> object:
        return {"row": 42}

    async def handle(ctx: CommandContext) -> None:
        seen.append(ctx)
        await ctx.reply(f"prepared {ctx.prepared}")

    async with serve_with(Subcommand(name="send", handle=handle, before_ack=remember)) as app:
        sent = await app.post_command('SEND --title "Big news" &lt;b&gt; now', user="U0BOB")
        reply = await sent.reply()

    assert reply["text"] == "prepared {'row': 42}"
    [ctx] = seen
    assert ctx.subcommand == "send"
    assert ctx.args == ("--title", "Big news", "<b>", "now")
    assert (ctx.user_id, ctx.team_id, ctx.channel_id) == ("U0BOB", "T0PUSHOPS", "C0GENERAL")
    assert ctx.trigger_id


async def test_a_refusal_before_the_ack_is_replied_and_the_handler_never_runs(serve_with):
    ran = []

    async def refuse(ctx: CommandContext) -> object:
        raise CommandError("No audience: add --segment NAME or --user ID.")

    async def handle(ctx: CommandContext) -> None:
        ran.append(ctx)

    async with serve_with(Subcommand(name="send", handle=handle, before_ack=refuse)) as app:
        sent = await app.post_command("send hello")
        reply = await sent.reply()

    assert sent.response.status_code == 200
    assert reply["text"].startswith("No audience: add --segment NAME or --user ID.")
    assert ran == []


async def test_a_refusal_after_the_ack_is_replied_escaped(serve_with):
    async def handle(ctx: CommandContext) -> None:
        raise CommandError(f"No send {ctx.args[0]} here.")

    async with serve_with(Subcommand(name="cancel", handle=handle)) as app:
        sent = await app.post_command("cancel <!channel>")
        reply = await sent.reply()

    assert reply["text"].startswith("No send &lt;!channel&gt; here.")


async def test_slow_work_runs_after_slack_got_its_ack(serve_with):
    release = asyncio.Event()

    async def handle(ctx: CommandContext) -> None:
        await release.wait()  # far beyond Slack's patience if it ran before the ack
        await ctx.reply("finished")

    async with serve_with(Subcommand(name="user", handle=handle)) as app:
        sent = await app.post_command("user cust-4711")
        assert sent.response.status_code == 200
        assert sent.replies() == []
        release.set()
        reply = await sent.reply()

    assert reply["text"] == "finished"


async def test_an_unexpected_error_after_the_ack_becomes_an_apology(serve_with):
    async def handle(ctx: CommandContext) -> None:
        raise RuntimeError("boom")

    async with serve_with(Subcommand(name="status", handle=handle)) as app:
        sent = await app.post_command("status 7K3M9Q")
        reply = await sent.reply()

    assert sent.response.status_code == 200
    assert reply["text"].startswith("Sorry, something went wrong on my side")
    assert "boom" not in reply["text"]


async def test_a_slow_before_ack_is_acked_in_time_and_never_cut_short(serve_with):
    release = asyncio.Event()
    stored: list[tuple[str, ...]] = []

    async def store(ctx: CommandContext) -> object:
        await release.wait()  # a store waiting on a lock: cut short, it might have committed
        stored.append(ctx.args)
        return "row 7"

    async def handle(ctx: CommandContext) -> None:
        await ctx.reply(f"stored {ctx.prepared}")

    async with serve_with(Subcommand(name="send", handle=handle, before_ack=store)) as app:
        started = time.monotonic()
        sent = await app.post_command("send hello")  # answered once the ack stops waiting
        acked_after = time.monotonic() - started
        assert sent.response.status_code == 200
        assert sent.replies() == []
        release.set()
        reply = await sent.reply()

    # The ack waited its whole budget for the store, and came before Slack gave up.
    assert ACK_BUDGET <= acked_after < SLACK_PATIENCE
    assert reply["text"] == "stored row 7"
    assert stored == [("hello",)]


async def test_a_refusal_after_a_late_ack_is_still_replied(serve_with):
    release = asyncio.Event()

    async def refuse_late(ctx: CommandContext) -> object:
        await release.wait()
        raise CommandError("PushOps is busy right now: nothing was stored.")

    async def handle(ctx: CommandContext) -> None:
        raise AssertionError("a refused command has no handler run")

    async with serve_with(Subcommand(name="send", handle=handle, before_ack=refuse_late)) as app:
        sent = await app.post_command("send hello")
        assert sent.response.status_code == 200
        release.set()
        reply = await sent.reply()

    assert reply["text"].startswith("PushOps is busy right now: nothing was stored.")
