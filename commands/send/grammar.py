"""The one-line grammar of `/push send [options] MESSAGE`, read into a `SendRequest`.

Only what the words themselves say is checked here (options, an audience, a message);
lengths, URLs, apps and times are the send service's and bot.timeparse's to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot import const
from bot.onesignal.languages import ENGLISH, LANGUAGES, accepted_codes, canonical
from commands._parsing import parse_options
from commands.context import CommandError

C: Final = const.SLASH_COMMAND
USAGE: Final = f'{C} send --segment NAME [--title TEXT] [--at WHEN | --in DURATION] "MESSAGE"'

LANGUAGE_PREFIXES: Final = ("--text-", "--title-")
"""`--text-de TEXT`, `--title-de TEXT`: the send in one more language (OneSignal's codes)."""
_LANGUAGE_OPTIONS: Final = tuple(
    f"{prefix}{code}" for code in LANGUAGES if code != ENGLISH for prefix in LANGUAGE_PREFIXES
)

FLAGS: Final = ("--yes", "--test", "--when-active")
SINGLE: Final = (
    "--app",
    "--title",
    "--url",
    "--image",
    "--at",
    "--in",
    "--template",
    "--local-time",
    "--throttle",
    "--ttl",
    "--priority",
    "--every",
    "--until",
    "--times",
    *_LANGUAGE_OPTIONS,
)
REPEATABLE: Final = ("--segment", "--exclude", "--user", "--button", "--data")


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
    every: str | None = None
    until: str | None = None
    times: str | None = None
    yes: bool = False
    test: bool = False
    template: str | None = None
    texts: tuple[tuple[str, str], ...] = ()
    titles: tuple[tuple[str, str], ...] = ()
    local_time: str | None = None
    when_active: bool = False
    throttle: str | None = None
    ttl: str | None = None
    priority: str | None = None
    buttons: tuple[str, ...] = ()
    data: tuple[str, ...] = ()

    def languages(self) -> dict[str, dict[str, str]]:
        """Code -> {"message": …, "title": …} of every language but English."""
        found: dict[str, dict[str, str]] = {}
        for code, text in self.texts:
            found.setdefault(code, {})["message"] = text
        for code, text in self.titles:
            found.setdefault(code, {})["title"] = text
        return found

    def delivery(self) -> dict[str, object]:
        """The delivery options as typed (`bot.delivery.options.DeliveryOptions` reads them)."""
        typed: dict[str, object] = {
            "local_time": self.local_time,
            "when_active": self.when_active or None,
            "throttle": self.throttle,
            "ttl": self.ttl,
            "priority": self.priority,
            "buttons": self.buttons or None,
            "data": self.data or None,
        }
        return {key: value for key, value in typed.items() if value is not None}


def parse_send(args: Sequence[str]) -> SendRequest:
    """Read the words after `/push send`; CommandError names the problem and the fix."""
    words = _language_words(args)
    options = parse_options(words, flags=FLAGS, single=SINGLE, repeatable=REPEATABLE, usage=USAGE)
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
        every=options.one("--every"),
        until=options.one("--until"),
        times=options.one("--times"),
        yes=options.has("--yes"),
        test=options.has("--test"),
        template=options.one("--template"),
        texts=_by_language(options.values, "--text-"),
        titles=_by_language(options.values, "--title-"),
        local_time=options.one("--local-time"),
        when_active=options.has("--when-active"),
        throttle=options.one("--throttle"),
        ttl=options.one("--ttl"),
        priority=options.one("--priority"),
        buttons=options.many("--button"),
        data=options.many("--data"),
    )
    _check_audience(request)
    _check_delivery(request)
    _check_series(request)
    if not request.message and request.template is None:
        raise CommandError(
            "The message is empty. Put the text after the options, in quotes if you like: "
            f'{C} send --segment "Active Users" "Version 2 is out" (or send a OneSignal '
            "template with --template NAME)."
        )
    return request


def _language_words(args: Sequence[str]) -> list[str]:
    """`args` with each `--text-XX` / `--title-XX` spelled as OneSignal spells the code;
    a code OneSignal does not accept is refused, naming the ones it does."""
    words: list[str] = []
    for index, word in enumerate(args):
        if word == "--":
            return [*words, *args[index:]]
        name, equals, value = word.partition("=")
        prefix = next((p for p in LANGUAGE_PREFIXES if name.lower().startswith(p)), None)
        if prefix is None:
            words.append(word)
            continue
        code = canonical(name[len(prefix) :])
        if code is None:
            raise CommandError(
                f"{name}: OneSignal does not accept the language code "
                f"{name[len(prefix) :][:20]!r}. The codes it accepts: {accepted_codes()}."
            )
        if code == ENGLISH:
            raise CommandError(
                f"{name}: English is the message itself and --title; the other languages "
                f'go beside it, as in --text-de "Neue Version" --title-de Update.'
            )
        words.append(f"{prefix}{code}{equals}{value}")
    return words


def _by_language(values: dict[str, tuple[str, ...]], prefix: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name[len(prefix) :], given[0])
        for name, given in values.items()
        if name.startswith(prefix) and name in _LANGUAGE_OPTIONS
    )


def _check_delivery(request: SendRequest) -> None:
    if request.when_active and request.local_time is not None:
        raise CommandError(
            "Use --local-time or --when-active, not both: OneSignal delivers either at one "
            "time of day in each user's own zone (--local-time 09:00) or when each user is "
            "usually active (--when-active)."
        )
    if (request.texts or request.titles) and not request.message and request.template is None:
        raise CommandError(
            "English is required beside other languages (OneSignal's fallback): put the "
            'English text after the options, as in --text-de "Neue Version" "New version".'
        )


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


def _check_series(request: SendRequest) -> None:
    """`--every` and its companions; the rule itself is `bot.recurrence`'s to read."""
    if request.every is None:
        if request.until is not None or request.times is not None:
            raise CommandError(
                "--until and --times go with --every: they end a recurring send, as in "
                "--every monday --at 09:00 --times 4."
            )
        return
    if request.in_ is not None:
        raise CommandError(
            "--every with --in does not work: a series starts at --at (or one interval from "
            "now), as in --every 6h --at 14:00."
        )
    if request.until is not None and request.times is not None:
        raise CommandError("Use --until or --times, not both: a series ends one way.")


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
