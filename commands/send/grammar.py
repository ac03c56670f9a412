"""The one-line grammar of `/push send [options] MESSAGE`, read into a `SendRequest`.

Only what the words themselves say is checked here (options, an audience, a message);
lengths, URLs, apps and times are the send service's and bot.timeparse's to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot import const
from commands._parsing import parse_options
from commands.context import CommandError

C: Final = const.SLASH_COMMAND
USAGE: Final = f'{C} send --segment NAME [--title TEXT] [--at WHEN | --in DURATION] "MESSAGE"'

FLAGS: Final = ("--yes", "--test")
SINGLE: Final = ("--app", "--title", "--url", "--image", "--at", "--in")
REPEATABLE: Final = ("--segment", "--exclude", "--user")


@dataclass(frozen=True, kw_only=True)
class SendRequest:
    """A send as typed: `yes` skips the preview, `test` targets the requester's own id."""

    message: str
    title: str | None = None
    url: str | None = None
    image: str | None = None
    app: str | None = None
    segments: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    at: str | None = None
    in_: str | None = None
    yes: bool = False
    test: bool = False


def parse_send(args: Sequence[str]) -> SendRequest:
    """Read the words after `/push send`; CommandError names the problem and the fix."""
    options = parse_options(args, flags=FLAGS, single=SINGLE, repeatable=REPEATABLE, usage=USAGE)
    request = SendRequest(
        message=" ".join(options.positional).strip(),
        title=options.one("--title"),
        url=options.one("--url"),
        image=options.one("--image"),
        app=options.one("--app"),
        segments=_names(options.many("--segment"), "--segment"),
        excluded=_names(options.many("--exclude"), "--exclude"),
        external_ids=_external_ids(options.many("--user")),
        at=options.one("--at"),
        in_=options.one("--in"),
        yes=options.has("--yes"),
        test=options.has("--test"),
    )
    _check_audience(request)
    if not request.message:
        raise CommandError(
            "The message is empty. Put the text after the options, in quotes if you like: "
            f'{C} send --segment "Active Users" "Version 2 is out"'
        )
    return request


def _names(values: Sequence[str], option: str) -> tuple[str, ...]:
    names = tuple(value.strip() for value in values)
    if any(not name for name in names):
        raise CommandError(f'{option} needs a segment name: {option} "Active Users"')
    return tuple(dict.fromkeys(names))


def _external_ids(values: Sequence[str]) -> tuple[str, ...]:
    ids = [part.strip() for value in values for part in value.split(",")]
    if any(not part for part in ids):
        raise CommandError("--user needs external ids separated by commas: --user cust-1,cust-2")
    return tuple(dict.fromkeys(ids))


def _check_audience(request: SendRequest) -> None:
    if request.test:
        if request.segments or request.excluded or request.external_ids:
            raise CommandError(
                "--test sends only to your own linked external id: remove --segment, "
                "--exclude and --user, or drop --test."
            )
        return
    if request.segments and request.external_ids:
        raise CommandError(
            "Use --segment or --user, not both: one send goes to segments or to users."
        )
    if request.excluded and not request.segments:
        raise CommandError(
            '--exclude only narrows segments: add --segment NAME, as in --segment "Active '
            'Users" --exclude Churned.'
        )
    if not request.segments and not request.external_ids:
        raise CommandError(
            "No audience: add --segment NAME or --user ID (nothing is ever sent to everyone "
            f'by default), as in {C} send --segment "Active Users" "Hello". '
            f"To try it on yourself, use --test."
        )
