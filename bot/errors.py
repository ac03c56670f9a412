"""The one place where unexpected errors are logged and the user gets a short apology.

Two doors lead here: Bolt's `@app.error` hook (errors inside listeners, before their ack)
and `Services.after_ack` (errors in work that continues after the ack). Either way the
error is logged once with a reference, counted, and the user reads an apology carrying
that reference, never a traceback. The generic apology asks to try again; work that fails
where something may already have happened (a send that may have gone out) raises
`Unfinished` instead, and the user reads what is known.
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.metrics import Metrics

log = logging.getLogger(__name__)

REFERENCE: Final = "(Reference `{ref}` helps your admin find it in the logs.)"

APOLOGY: Final = (
    "Sorry, something went wrong on my side and I could not finish that. "
    f"Please try again in a minute. {REFERENCE}"
)
"""For work where nothing can have happened yet; see `Unfinished` for the rest."""


class Unfinished(Exception):
    """Work failed unexpectedly where something may already have happened, such as a send
    that may have gone out: `told` is what the user reads instead of the generic apology
    (which would ask them to try again). The error that happened is its `__cause__`."""

    def __init__(self, told: str) -> None:
        super().__init__(told)
        self.told = told


async def report_unexpected(
    error: BaseException, *, kind: str, respond: AsyncRespond | None, metrics: Metrics
) -> str:
    """Log `error` with a fresh reference, count it, apologize through `respond`; the reference."""
    ref = uuid.uuid4().hex[:8]
    metrics.unexpected_errors.inc()
    cause = error.__cause__ if isinstance(error, Unfinished) and error.__cause__ else error
    log.error(
        "unexpected %s while handling a %s request (reference %s)",
        type(cause).__name__,
        kind,
        ref,
        exc_info=error,
    )
    if isinstance(error, Unfinished):
        told = f"{error.told} {REFERENCE.format(ref=ref)}"
    else:
        told = APOLOGY.format(ref=ref)
    await _apologize(respond, told, ref)
    return ref


async def _apologize(respond: AsyncRespond | None, text: str, ref: str) -> None:
    if respond is None:  # no response_url (e.g. a form submission): the log must do
        return
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except (aiohttp.ClientError, TimeoutError) as e:
        # The error itself is already logged; the apology is best effort.
        log.warning("could not send the apology for %s: %s", ref, type(e).__name__)
