"""Plain records the fake hands to tests: received requests and seeded apps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake received it (faulted and refused ones included)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # the parsed body; None when empty or not JSON
    time: float  # time.monotonic() at arrival


@dataclass(slots=True)
class FakeApp:
    """A OneSignal app the fake knows, with the REST API key scoped to it."""

    id: str
    rest_api_key: str = field(repr=False)
    name: str
