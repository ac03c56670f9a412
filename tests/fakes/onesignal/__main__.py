"""Run the fake OneSignal by hand: `python -m tests.fakes.onesignal --port 8080`."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from tests.fakes.onesignal.server import FakeOneSignal


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.onesignal",
        description="Serve a fake OneSignal REST API until interrupted (Ctrl-C).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--app-id", help="id of the seeded app (default: random)")
    parser.add_argument("--rest-api-key", help="REST key of the seeded app (default: random)")
    parser.add_argument("--org-key", help="organization key (default: random)")
    parser.add_argument(
        "--users", type=int, default=3, help="seed users user-1..N with one push subscription"
    )
    parser.add_argument(
        "--auto-advance", action="store_true", help="each GET of a notification delivers a step"
    )
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fake = FakeOneSignal(
        app_id=args.app_id, rest_api_key=args.rest_api_key, org_api_key=args.org_key
    )
    try:
        url = fake.start(args.host, args.port)
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error.strerror}")
        return 1
    fake.auto_advance = args.auto_advance
    # Nobody outside this process can read the recorded requests; keeping them would only
    # grow memory under a benchmark's load.
    fake.record_requests = False
    for number in range(1, args.users + 1):
        fake.add_user(fake.app.id, f"user-{number}")
    # These keys are the fake's own, made up for this run: printing them is the point.
    print(f"Fake OneSignal at {url}")
    print(f"  ONESIGNAL_API_URL={url}")
    print(f"  ONESIGNAL_APP_ID={fake.app.id}")
    print(f"  ONESIGNAL_API_KEY={fake.app.rest_api_key}")
    print(f"  ONESIGNAL_ORG_KEY={fake.org_api_key}")
    print(f"  users: {', '.join(f'user-{n}' for n in range(1, args.users + 1)) or 'none'}")
    print("Ctrl-C to stop.", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly when a supervisor terminates us
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
