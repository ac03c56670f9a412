"""The one place where unexpected errors are logged and the user gets a short apology.

Two doors lead here: Bolt's `@app.error` hook (errors inside listeners, before their ack)
and `Services.after_ack` (errors in work that continues after the ack). Either way the
error is logged once with a reference, counted, and the user reads an apology carrying
that reference, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.metrics import Metrics

log = logging.getLogger(__name__)

APOLOGY: Final = (
    "Sorry, something went wrong on my side and I could not finish that. "
    "Please try again in a minute. (Reference `{ref}` helps your admin find it in the logs.)"
)


async def report_unexpected(
    error: BaseException, *, kind: str, respond: AsyncRespond | None, metrics: Metrics
) -> str:
    """Log `error` with a fresh reference, count it, apologize through `respond`; the reference."""
    ref = uuid.uuid4().hex[:8]
    metrics.unexpected_errors.inc()
    log.error(
        "unexpected %s while handling a %s request (reference %s)",
        type(error).__name__,
        kind,
        ref,
        exc_info=error,
    )
    await _apologize(respond, ref)
    return ref


async def _apologize(respond: AsyncRespond | None, ref: str) -> None:
    if respond is None:  # no response_url (e.g. a form submission): the log must do
        return
    try:
        await respond(
            text=APOLOGY.format(ref=ref), response_type="ephemeral", replace_original=False
        )
    except (aiohttp.ClientError, TimeoutError) as e:
        # The error itself is already logged; the apology is best effort.
        log.warning("could not send the apology for %s: %s", ref, type(e).__name__)
