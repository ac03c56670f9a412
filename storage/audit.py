"""The audit log (docs/design.md invariant 8): redaction, the keyed per-workspace chain, appending.

Each event stores ``hash = sha256(prev_hash + canonical JSON of the event)``, where the event is
every column but the hashes and the MAC, and ``prev_hash`` is the hash of the event before it in
its workspace (`GENESIS_HASH` for the first), and ``mac = HMAC-SHA256(audit key, hash)``. The hash
of an event commits to every event before it, so one MAC authenticates the whole chain up to its
event: someone who can write the database but has no key can edit, add, remove or rehash events,
yet cannot give the result MACs that verify. The audit keys are derived from
``PUSHOPS_SECRET_KEY`` (`AuditKeys`, HKDF with a label of their own); each event names the key
that made its MAC (`mac_key_id`), so after a rotation the old key still verifies old events, and
the first event under the new key anchors them (storage.audit_chain has the verification, the
checkpoints and the anchoring).

The workspace row keeps the head (last seq and hash): appending takes that row's write lock, so
concurrent appends queue instead of forking the chain, and a removed tail shows as a head that
points past the last event.

Appending is on the path of every send (two events each), and each SQL statement costs more than
hashing dozens of events, so an append is two statements whatever the number of events: move
the head (when this process guessed it right) and insert the events in one executemany, with
rows built as plain dicts: no ORM objects, no unit of work. The guess is the head this process
last wrote for the workspace; when it is wrong (another process wrote since, or a transaction
rolled back) the first statement only reads and locks the head, the events are chained after
it, and a third statement stores the new head: what every append cost before the guess. The
keys and the guesses live in an `AuditAppender` in each session's `info`, put there by the
session factory (`storage.db.Database.open(url, audit_keys=...)`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import KeyRing
from storage.errors import AuditKeyMissing, WorkspaceNotFound
from storage.models import AuditEvent, Workspace, utcnow

REDACTED: Final = "[redacted]"
_SECRET_KEY_NAME: Final = re.compile(
    r"secret|token|passw|api_?key|apikey|authorization|credential|private|signing|cookie",
    re.IGNORECASE,
)
# Values that are secrets whatever their key: Slack tokens, OneSignal keys, our ciphertexts.
_SECRET_VALUE: Final = re.compile(
    r"\b(xox[abeoprs]-|xapp-|os_v2_(app|org)_)|^v1:[0-9a-f]{8}:|^(Key|Basic|Bearer) \S",
)
# Each pattern of _SECRET_VALUE contains one of these; a value with none is not searched.
_SECRET_VALUE_HINT: Final = re.compile(
    "|".join(map(re.escape, ("xox", "xapp-", "os_v2_", "v1:", "Key ", "Basic ", "Bearer ")))
)
_EXPORT_BATCH: Final = 500
_VERIFY_BATCH: Final = 2_000
_EVENTS: Final = cast(sa.Table, AuditEvent.__table__)

AUDIT_MAC_LABEL: Final = b"pushops audit log mac v1"
"""The HKDF label of the audit keys: distinct from every other use of PUSHOPS_SECRET_KEY."""

SESSION_INFO_KEY: Final = "pushops.audit"
"""Where a session's `info` holds its database's `AuditAppender`."""


class AuditKeys:
    """The audit log's HMAC keys: the first MACs new events, every one verifies what it made.

    Derived from the key ring (`from_keyring`), one per key of ``PUSHOPS_SECRET_KEY`` and under
    the same id, so ``PUSHOPS_SECRET_KEY=new,old`` MACs with the new key and still verifies
    events of the old one. Never shows a key, not in a repr either.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("AuditKeys needs at least one key")
        self._keys = dict(keys)
        self._primary = keys[0][0]
        self._primary_key = keys[0][1]

    @classmethod
    def from_keyring(cls, keyring: KeyRing) -> AuditKeys:
        """The audit keys derived from each key of `keyring`."""
        return cls(keyring.derive(AUDIT_MAC_LABEL))

    @property
    def primary_key_id(self) -> str:
        """The id of the key that MACs new events."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of every key, the one that MACs first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"AuditKeys(key_ids={list(self._keys)!r})"

    def mac(self, event_hash: str) -> str:
        """The MAC of an event whose hash is `event_hash`, under the first key."""
        return hmac.digest(self._primary_key, event_hash.encode("ascii"), "sha256").hex()

    def check(self, key_id: str | None, event_hash: str, mac: str) -> bool | None:
        """Whether `mac` is the MAC of `event_hash` under `key_id`; None when that key is absent."""
        key = self._keys.get(key_id or "")
        if key is None:
            return None
        expected = hmac.digest(key, event_hash.encode("ascii"), "sha256").hex()
        return hmac.compare_digest(expected, mac)


@dataclass(frozen=True)
class AuditEntry:
    """An event to append; `details` is redacted on the way in."""

    actor: str
    action: str
    target: str = ""
    outcome: str = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)


def redact(details: Mapping[str, Any]) -> dict[str, Any]:
    """`details` as stored: secret-looking keys and values replaced, JSON-normalised.

    Normalised as a JSON round trip would, so that what is hashed is exactly what the
    database gives back: tuples become lists, keys strings, anything else its `str`.
    """
    cleaned = _redact_value(dict(details))
    assert isinstance(cleaned, dict)
    return cleaned


def _redact_value(value: Any, key: str = "") -> Any:
    if key and _is_secret_key(key):
        return REDACTED
    kind = type(value)
    if kind is str:
        return REDACTED if _is_secret_value(value) else value
    if kind is dict and all(type(k) is str for k in value):
        return {k: _redact_value(v, k) for k, v in value.items()}
    if kind is list:
        return [_redact_value(item) for item in value]
    if kind is int or kind is float or kind is bool or value is None:
        return value
    # Anything else (a tuple, a date, an enum, a non-string key...) takes the JSON round trip,
    # exact types above being what JSON gives back unchanged; the round trip of the whole
    # document cost more than the rest of an append.
    return _redact_value(json.loads(json.dumps(value, default=str)))


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # Details use a small vocabulary of keys; the regex is most of an event's redaction cost.
    return _SECRET_KEY_NAME.search(key) is not None


def _is_secret_value(value: str) -> bool:
    return _SECRET_VALUE_HINT.search(value) is not None and _SECRET_VALUE.search(value) is not None


def canonical_time(value: datetime) -> str:
    """`value` in UTC as the canonical form writes it: ``2026-03-01T09:30:15.123456Z``."""
    moment = value if value.tzinfo is UTC else value.astimezone(UTC)
    if moment.year < 1000:  # isoformat pads the year to four digits, strftime does not
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as that strftime at a quarter of its cost: verify formats every event.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def stored_time(value: datetime) -> str:
    """`canonical_time` of a `created_at` as `iter_audit_pages` reads it: naive, in UTC (SQLite
    keeps no offset, and its values are UTC: what `storage.models.UTCDateTime` reads them as)."""
    if value.tzinfo is None and value.year >= 1000:
        return value.isoformat(timespec="microseconds") + "Z"  # canonical_time's text, sooner
    return canonical_time(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


class AuditRecord(Protocol):
    """What verification reads of an event: an `AuditEvent`, or a row of its table."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def team_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def details(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def mac_key_id(self) -> str | None: ...


def event_hash(prev_hash: str, event: AuditRecord) -> str:
    """The hash `event` must carry after `prev_hash`."""
    return content_hash(
        prev_hash,
        event.id,
        event.team_id,
        event.seq,
        canonical_time(event.created_at),
        event.actor,
        event.action,
        event.target,
        event.outcome,
        event.details,
    )


def _hash(prev_hash: str, event: Mapping[str, Any], created_at: str) -> str:
    """The hash of a row being appended: `event` maps column names to values (`details` its
    canonical text); `created_at` is already in `canonical_time` form (one for a batch)."""
    return canonical_hash(
        prev_hash,
        str(event["id"]),
        event["team_id"],
        event["seq"],
        created_at,
        event["actor"],
        event["action"],
        event["target"],
        event["outcome"],
        event["details"],
    )


# The canonical form: sorted keys, no spaces, UTF-8. Built once (json.dumps with options
# builds an encoder per call).
_CANONICAL_JSON: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode

# What `_CANONICAL_JSON` does with a string (`ensure_ascii=False`): the C function itself,
# without the encoder's Python frame around it, called six times an event. Not in the json
# module's documentation; tests/storage/test_audit_append.py holds the canonical text to the
# encoder's own, so a Python that changes it fails there.
_JSON_STRING: Final[Callable[[str], str]] = json.encoder.encode_basestring


def canonical_json(details: Any) -> str:
    """`details` as the canonical form writes them: sorted keys, no spaces, not ASCII-escaped.

    What an event's `details` column holds as its text (PushOps writes that text itself), and
    what its hash covers."""
    return _CANONICAL_JSON(details)


def content_hash(
    prev_hash: str,
    event_id: uuid.UUID,
    team_id: str,
    seq: int,
    created_at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: Any,
) -> str:
    """sha256 of `prev_hash` and the canonical JSON of an event's columns (all but its hashes
    and MAC); `created_at` in `canonical_time` form. What writing and verifying both hash."""
    return canonical_hash(
        prev_hash,
        str(event_id),
        team_id,
        seq,
        created_at,
        actor,
        action,
        target,
        outcome,
        _CANONICAL_JSON(details),
    )


def canonical_hash(
    prev_hash: str,
    event_id: str,
    team_id: str,
    seq: int,
    created_at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: str,
) -> str:
    """`content_hash` of an event whose id, time and details are already text in canonical form:
    ``str(event_id)``, `canonical_time`, `canonical_json`.

    The canonical JSON is the object below, keys sorted, no spaces, UTF-8. It is written out
    rather than encoded from a dict: the same text at half the cost, which was most of what
    verifying an event cost (tests/storage/test_audit_append.py holds it to the encoder's
    output). Each value is encoded by that encoder but `seq`, an integer, which the encoder
    writes as `int.__repr__` does, `created_at`, text without a character JSON escapes, and
    `details`, already the encoder's text.
    """
    string = _JSON_STRING
    canonical = (
        f'{{"action":{string(action)},"actor":{string(actor)},"created_at":"{created_at}",'
        f'"details":{details},"id":{string(event_id)},"outcome":{string(outcome)},'
        f'"seq":{int.__repr__(seq)},"target":{string(target)},"team_id":{string(team_id)}}}'
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


async def append_audit(
    *,
    session: AsyncSession,
    team_id: str,
    actor: str,
    action: str,
    target: str = "",
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the workspace's chain, in the caller's transaction.

    Returns the event as stored (a new object, not attached to the session).
    """
    entry = AuditEntry(actor, action, target, outcome, details or {})
    (row,) = await _append(session, team_id, [entry])
    return AuditEvent(**{**row, "details": json.loads(row["details"])})


async def append_audit_entries(
    *, session: AsyncSession, team_id: str, entries: Sequence[AuditEntry]
) -> None:
    """Append several events to one workspace's chain, in the caller's transaction.

    Two or three statements whatever the number of events (see the module docstring).
    """
    if entries:
        await _append(session, team_id, entries)


async def append_audit_by_team(
    *, session: AsyncSession, entries: Mapping[str, Sequence[AuditEntry]]
) -> None:
    """Append events to several workspaces' chains (team id -> its events), in the caller's
    transaction: what a worker's batch of sends of many workspaces writes.

    Three statements whatever the number of workspaces: lock and read every head (in team
    order, the one every writer locks in, so two cannot deadlock), move them all, insert every
    event. A statement per workspace would hold the heads already locked while the rest are
    taken, and every other writer of those workspaces would wait that long; call it as the
    transaction's last statement, so they are held for no more than the commit.
    """
    teams = sorted(team for team, events in entries.items() if events)
    if len(teams) == 1:
        await _append(session, teams[0], entries[teams[0]])
    elif teams:
        await _append_to_many(session, teams, entries)


async def _append_to_many(
    session: AsyncSession, teams: list[str], entries: Mapping[str, Sequence[AuditEntry]]
) -> None:
    appender = _appender(session)
    await session.flush()  # as in `_append`
    now = utcnow()
    stamp = canonical_time(now)
    rows = {team: [_new_row(team, now, entry) for entry in entries[team]] for team in teams}
    for team in teams:  # in use: see `_append`
        appender.guesses.pop(team, None)
    found = await session.execute(_LOCK_HEADS, {"teams": teams})
    heads: dict[str, Head] = {team: (seq, hash_) for team, seq, hash_ in found.tuples()}
    if missing := [team for team in teams if team not in heads]:
        raise WorkspaceNotFound(missing[0])
    moved = {team: _chain(rows[team], heads[team], stamp, appender.keys) for team in teams}
    await session.execute(
        _SET_HEAD, [{"team": t, "new_seq": h[0], "new_hash": h[1]} for t, h in moved.items()]
    )
    await session.execute(_INSERT_EVENTS, [row for team in teams for row in rows[team]])
    appender.guesses.update(moved)


# The first statement of every append takes the workspace row's write lock (PostgreSQL) for the
# rest of the transaction; a concurrent append waits there and then sees our head. On SQLite
# every transaction already holds the write lock (BEGIN IMMEDIATE, see storage.db). It moves
# the head to `new_*` only if the head is still `guess_*`, and returns the head it leaves: ours
# (the guess was right) or the one to chain after. SET expressions read the row as it was.
_GUESS_HOLDS: Final = sa.and_(
    Workspace.audit_head_seq == sa.bindparam("guess_seq"),
    Workspace.audit_head_hash == sa.bindparam("guess_hash"),
)
_MOVE_HEAD: Final = (
    sa.update(cast(sa.Table, Workspace.__table__))
    .where(Workspace.team_id == sa.bindparam("team"))
    .values(
        audit_head_seq=sa.case(
            (_GUESS_HOLDS, sa.bindparam("new_seq")), else_=Workspace.audit_head_seq
        ),
        audit_head_hash=sa.case(
            (_GUESS_HOLDS, sa.bindparam("new_hash")), else_=Workspace.audit_head_hash
        ),
    )
    .returning(Workspace.audit_head_seq, Workspace.audit_head_hash)
)
_SET_HEAD: Final = (
    sa.update(cast(sa.Table, Workspace.__table__))
    .where(Workspace.team_id == sa.bindparam("team"))
    .values(audit_head_seq=sa.bindparam("new_seq"), audit_head_hash=sa.bindparam("new_hash"))
)
# Several workspaces' heads, locked in team order (`append_audit_by_team`). FOR NO KEY UPDATE,
# the lock an UPDATE of the head takes: FOR UPDATE would also wait for (and deadlock with) the
# key-share locks other transactions' foreign keys take on the workspace row.
_LOCK_HEADS: Final = (
    sa.select(Workspace.team_id, Workspace.audit_head_seq, Workspace.audit_head_hash)
    .where(Workspace.team_id.in_(sa.bindparam("teams", expanding=True)))
    .order_by(Workspace.team_id)
    .with_for_update(key_share=True)
)


class _JSONText(sa.TypeDecorator[str]):
    """A JSON column's value given as its JSON text, stored as it is.

    `details` are written as their canonical text (`canonical_json`), the very text their hash
    covers, so that verifying can hash the stored text instead of parsing and re-encoding it.
    The JSON type would encode a string once more (as a JSON string), hence no bind processing
    here, where TypeDecorator subclasses usually keep the implementation's: what remains of
    JSON is its SQL type (PostgreSQL's cast to ``json``, which keeps the text as given).
    tests/storage/test_audit_append.py reads the stored text back.
    """

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


# A Core INSERT on the table: executemany, without the ORM's per-object bookkeeping.
_INSERT_EVENTS: Final = sa.insert(cast(sa.Table, AuditEvent.__table__)).values(
    details=sa.bindparam("details", type_=_JSONText())
)
_NO_HEAD: Final = (-1, "")  # matches no workspace: the first statement then only reads the head

Head = tuple[int, str]


class AuditAppender:
    """What appending needs, per database: the keys, and per workspace the head last written."""

    def __init__(self, keys: AuditKeys) -> None:
        self.keys = keys
        self.guesses: dict[str, Head] = {}


def audit_session_info(keys: AuditKeys | None) -> dict[str, object]:
    """The `info` of sessions that append with `keys` (none: appends raise AuditKeyMissing)."""
    return {} if keys is None else {SESSION_INFO_KEY: AuditAppender(keys)}


def _appender(session: AsyncSession) -> AuditAppender:
    appender = session.info.get(SESSION_INFO_KEY)
    if not isinstance(appender, AuditAppender):
        raise AuditKeyMissing()
    return appender


def session_audit_keys(session: AsyncSession) -> AuditKeys:
    """The audit keys `session`'s database was opened with (AuditKeyMissing without)."""
    return _appender(session).keys


async def _append(
    session: AsyncSession, team_id: str, entries: Sequence[AuditEntry]
) -> list[dict[str, Any]]:
    """Chain `entries` after the workspace's head and store them; the stored rows."""
    # The statements below are Core, which does not autoflush: the caller may have just added
    # the workspace itself in this transaction.
    appender = _appender(session)
    await session.flush()
    now = utcnow()
    stamp = canonical_time(now)
    rows = [_new_row(team_id, now, entry) for entry in entries]
    keys, guesses = appender.keys, appender.guesses
    # Taken out while in use: put back only once these rows are stored.
    guess = guesses.pop(team_id, _NO_HEAD)
    new_head = _NO_HEAD if guess == _NO_HEAD else _chain(rows, guess, stamp, keys)
    params = {
        "team": team_id,
        "guess_seq": guess[0],
        "guess_hash": guess[1],
        "new_seq": new_head[0],
        "new_hash": new_head[1],
    }
    head = (await session.execute(_MOVE_HEAD, params)).one_or_none()
    if head is None:
        raise WorkspaceNotFound(team_id)
    if tuple(head) != new_head:  # the guess was wrong: chain after the real head
        new_head = _chain(rows, (head[0], head[1]), stamp, keys)
        params = {"team": team_id, "new_seq": new_head[0], "new_hash": new_head[1]}
        await session.execute(_SET_HEAD, params)
    await session.execute(_INSERT_EVENTS, rows)
    guesses[team_id] = new_head
    return rows


def _chain(rows: list[dict[str, Any]], head: Head, stamp: str, keys: AuditKeys) -> Head:
    """Number, hash and MAC `rows` as the events after `head`; the head they make."""
    seq, prev_hash = head
    key_id = keys.primary_key_id
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = _hash(prev_hash, row, stamp)
        row["mac"] = keys.mac(prev_hash)
        row["mac_key_id"] = key_id
    return seq, prev_hash


def _new_row(team_id: str, now: datetime, entry: AuditEntry) -> dict[str, Any]:
    """An event's columns but its place in the chain (`seq` and the hashes); `details` as their
    canonical text."""
    return {
        "id": uuid.uuid4(),
        "team_id": team_id,
        "created_at": now,
        "actor": entry.actor[:64],
        "action": entry.action[:64],
        "target": entry.target[:200],
        "outcome": entry.outcome[:32],
        "details": _CANONICAL_JSON(redact(entry.details)),
    }


async def list_audit_events(
    *, session: AsyncSession, team_id: str, limit: int = 20, before_seq: int | None = None
) -> list[AuditEvent]:
    """The workspace's latest events, newest first (for `/push audit N`)."""
    query = sa.select(AuditEvent).where(AuditEvent.team_id == team_id)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    result = await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit))
    return list(result)


async def get_audit_event(
    *, session: AsyncSession, team_id: str, event_id: uuid.UUID
) -> AuditEvent | None:
    """One event of the workspace by id; another workspace's event is None."""
    query = sa.select(AuditEvent).where(AuditEvent.id == event_id, AuditEvent.team_id == team_id)
    return (await session.scalars(query)).one_or_none()


AuditRow = tuple[
    uuid.UUID | str, str, int, datetime, str, str, str, str, str, str, str, str | None, str | None
]
"""An event as `iter_audit_pages` reads it: id (on PostgreSQL its text, which PostgreSQL writes
as `str` of a UUID does), team_id, seq, created_at (in UTC, naive: `stored_time`), actor,
action, target, outcome, details (its JSON text, as stored), prev_hash, hash, mac, mac_key_id."""

_ROW_NAMES: Final = (
    "id", "team_id", "seq", "created_at", "actor", "action", "target", "outcome", "details",
    "prev_hash", "hash", "mac", "mac_key_id",
)  # fmt: skip
# `details` as its stored text: hashed as it is when canonical (`content_holds`), else parsed
# by json.loads (the drivers' own JSON loading costs more). `created_at` as a naive UTC time,
# without the model's conversion of every row: `stored_time` formats it in one step. On
# PostgreSQL the database gives the time in UTC and the id as text: no time zone, and no UUID
# object that would only be written back as text.
_AS_READ: Final[dict[str, Callable[[Any], Any]]] = {
    "details": lambda column: sa.cast(column, sa.Text),
    "created_at": lambda column: sa.type_coerce(column, sa.DateTime(timezone=True)),
}
_AS_READ_ON_POSTGRESQL: Final[dict[str, Callable[[Any], Any]]] = {
    **_AS_READ,
    "id": lambda column: sa.cast(column, sa.Text),
    "created_at": lambda column: sa.type_coerce(sa.func.timezone("UTC", column), sa.DateTime()),
}


def _row_columns(as_read: Mapping[str, Callable[[Any], Any]]) -> tuple[Any, ...]:
    return tuple(as_read.get(name, lambda column: column)(_EVENTS.c[name]) for name in _ROW_NAMES)


_ROW_COLUMNS: Final = {
    "postgresql": _row_columns(_AS_READ_ON_POSTGRESQL),
    "sqlite": _row_columns(_AS_READ),
}


async def iter_audit_pages(
    *, session: AsyncSession, team_id: str
) -> AsyncGenerator[Sequence[AuditRow], None]:
    """Every event of the workspace, oldest first, as plain rows (`AuditRow`), a page at a time.

    What `audit verify` walks: a row costs a fraction of an ORM object (no identity map, no
    instrumentation), unpacked as a tuple it costs less than read by name, and a page is
    one step of the loop instead of one per event; at a million events that is most of the
    time verification takes. The next page is asked for before a page is handed over, so the
    database finds it while the caller checks this one. Close the iterator when leaving it
    early (`contextlib.aclosing`): until then the session may still be reading.
    """
    columns = _ROW_COLUMNS.get(session.get_bind().dialect.name, _ROW_COLUMNS["sqlite"])
    query = sa.select(*columns).where(_EVENTS.c.team_id == team_id).order_by(_EVENTS.c.seq)

    async def page_after(last: int) -> Sequence[AuditRow]:
        # keyset pages on (team_id, seq), the unique index
        page = await session.execute(query.where(_EVENTS.c.seq > last).limit(_VERIFY_BATCH))
        return cast(Sequence[AuditRow], page.all())

    following: asyncio.Future[Sequence[AuditRow]] | None = asyncio.ensure_future(page_after(0))
    try:
        while following is not None:
            page = await following
            following = None
            if len(page) == _VERIFY_BATCH:
                following = asyncio.ensure_future(page_after(page[-1][2]))
                await asyncio.sleep(0)  # it sends its query now, not once this page is checked
            yield page
    finally:
        if following is not None:  # left early: the session is free once its answer is in
            await following


def content_holds(row: AuditRow) -> bool:
    """Whether an event as `iter_audit_pages` reads it matches its hash.

    PushOps stores `details` as their canonical text, so that text is hashed as it is, with no
    parsing: one hash an event. Only when that does not match, or the text is not canonical
    (an earlier release stored what `json.dumps` writes: ": " between each key and its value),
    are the details parsed and written in canonical form, as they always were; so a text in
    another form verifies exactly as before, and any change fails as before.

    Hashing the stored text is as strong as parsing it: every other value in the hashed text is
    a JSON string (in which a quote is always escaped), digits, or the time, so the text before
    the details ends at its first ``,"details":`` and the text after them begins at its last
    ``,"id":"``. A text that hashes to the event's hash is therefore the text it was written
    with, column by column; and the canonical text the writer hashed parses and re-encodes to
    itself, so the parsing path would have accepted it too.
    """
    event_id, team, seq, at, actor, action, target, outcome, details, prev, digest = row[:11]
    ident = event_id if type(event_id) is str else str(event_id)
    stamp = stored_time(at)
    fields = (prev, ident, team, seq, stamp, actor, action, target, outcome)
    if '": ' not in details and canonical_hash(*fields, details) == digest:
        return True
    try:
        parsed = json.loads(details)
    except ValueError:  # not JSON (SQLite does not check): not what was hashed
        return False
    return canonical_hash(*fields, _CANONICAL_JSON(parsed)) == digest


async def iter_audit_events(
    *, session: AsyncSession, team_id: str | None = None, since: datetime | None = None
) -> AsyncIterator[AuditEvent]:
    """Every event (of one workspace, or all: operator export), oldest first, streamed."""
    query = sa.select(AuditEvent)
    if team_id is not None:
        query = query.where(AuditEvent.team_id == team_id)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    query = query.order_by(AuditEvent.team_id, AuditEvent.seq)
    last: tuple[str, int] | None = None
    while True:  # keyset pages: constant memory and no server-side cursor to keep open
        page_query = query
        if last is not None:
            page_query = query.where(sa.tuple_(AuditEvent.team_id, AuditEvent.seq) > last)
        page = list(await session.scalars(page_query.limit(_EXPORT_BATCH)))
        for event in page:
            yield event
        if len(page) < _EXPORT_BATCH:
            return
        last = (page[-1].team_id, page[-1].seq)
