"""Reading what a program run on a pseudo-terminal (`pty.fork`) writes, for the prompt tests."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    """What the terminal `fd` shows until `marker` (or the child closes it, or `timeout` s)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen
