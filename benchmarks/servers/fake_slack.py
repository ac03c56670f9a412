"""The fake Slack of tests/fakes/slack.py in a process of its own, for benchmarks.

    python -m benchmarks.servers.fake_slack      (from the repository's root)

It prints one JSON line (`api_url`, `base_url`, `bot_token`, `team_id`, `user_id`,
`signing_secret`) once it accepts requests. Then each line `counts` on standard input is
answered with one JSON line: `calls`, the number of recorded calls per method
(`response_url` for posts to response URLs), and `replies`, the posts to response URLs
counted by the first two words of their text once ids (`code` and what is in brackets)
are left out ("was sent.", "User in", "Sorry, something"...), to tell answers from
apologies. Each line `replies` is answered with one JSON line: the posts to response URLs
since the last `replies`, each `[target, at, text]` (`at`: when the fake answered it, on
the machine's monotonic clock, which every process shares). End of input (or SIGTERM)
stops it.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections import Counter
from types import FrameType

from tests.fakes import signing
from tests.fakes.slack import (
    DEFAULT_BOT_TOKEN,
    DEFAULT_TEAM_ID,
    DEFAULT_USER_ID,
    RESPONSE_URL,
    FakeSlack,
)

_IDS = re.compile(r"`[^`]*`|\([^)]*\)")  # `7K3M9Q` (OneSignal `…`)
_WORD = re.compile(r"[\w,.']+")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _counts(fake: FakeSlack) -> dict[str, dict[str, int]]:
    calls = fake.calls
    replies = Counter(
        _opening(str(call.args.get("text", ""))) for call in calls if call.method == RESPONSE_URL
    )
    return {"calls": dict(Counter(call.method for call in calls)), "replies": dict(replies)}


def _replies(fake: FakeSlack, seen: int) -> list[list[object]]:
    posts = fake.calls_to(RESPONSE_URL)[seen:]
    return [[call.target, call.at, str(call.args.get("text", ""))] for call in posts]


def _opening(text: str) -> str:
    words = _WORD.findall(_IDS.sub(" ", text))
    return " ".join(words[:2]) or "(no text)"


def main() -> int:
    fake = FakeSlack()
    fake.start()
    signal.signal(signal.SIGTERM, _stop)
    ready = {
        "api_url": fake.api_url,
        "base_url": fake.base_url,
        "bot_token": DEFAULT_BOT_TOKEN,
        "team_id": DEFAULT_TEAM_ID,
        "user_id": DEFAULT_USER_ID,
        "signing_secret": signing.DEFAULT_SIGNING_SECRET,
    }
    print(json.dumps(ready), flush=True)
    seen = 0
    try:
        for line in sys.stdin:
            if line.strip() == "counts":
                print(json.dumps(_counts(fake)), flush=True)
            elif line.strip() == "replies":
                posts = _replies(fake, seen)
                seen += len(posts)
                print(json.dumps(posts), flush=True)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
