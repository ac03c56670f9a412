"""The send services between the Slack surface and OneSignal (docs/design.md, invariants 1-4b).

Three parts, one per process each, built in this order (`bot.services.build_services`):
the `Deliverer` (given the process's `bot.timers.Timers`) takes due sends to OneSignal and
records their outcomes; `Sends`, the state machine, creates, confirms, approves and rejects
sends and hands what may go to the deliverer; `Recall` cancels sends and reports on them.
The `Scheduler` is given the deliverer. `SendContent` and `Audience` validate what a send
says and to whom; `Send` and `SendState` are the stored sends they hand up (the Slack
surface imports nothing from `storage`), and storage's errors are answered in this
package's own (`outcomes.py`). Nothing here imports Slack: outcomes reach people through
`bot.notifier.Notifier`.

    sends.py          Sends: create, confirm, discard, resend_missed, edit, approve, reject
    deliverer.py      Deliverer: dispatch, deliver, claims, slots, the result writer
    recall.py         Recall: cancel, status, estimate, segments, get, find, recent
    content.py        SendContent, Audience, SendRejected (OneSignal's limits), languages
    options.py        DeliveryOptions: time zone or intelligent delivery, throttle, buttons,
                      data
    templates.py      OneSignal's templates of an app, listed and kept briefly
    outcomes.py       Estimate, CancelOutcome, StatusReport, SendNotFound,
                      DecisionRefused, NoLongerPending, NotEditable, StoreBusy,
                      StoreRefused,
                      StoreInterrupted, DeliveryPolicy
    attempt.py        one delivery attempt, and the check rounds of a send OneSignal has
                      not answered about
    answers.py        what OneSignal's answers mean, and which leave a send's outcome unknown
    writer.py         delivery results written many per transaction
    holds.py          the approval policy asked again when a send is due
    apps.py           a OneSignal client per app on one shared pool, keys kept briefly
    notifications.py  cancelling at OneSignal, reading counters, finding notifications by name
    counters.py       a sent send's final counters, read once per notification, paced
"""

from bot.delivery.attempt import notification_ids, notification_name
from bot.delivery.content import (
    MAX_EXTERNAL_IDS,
    MAX_SEGMENT_NAME,
    MAX_TEXT_BYTES,
    MAX_URL_LENGTH,
    Audience,
    RejectedField,
    SendContent,
    SendRejected,
    TemplateRef,
    Translation,
)
from bot.delivery.counters import (
    Counted,
    CountersRead,
    Later,
    SendCounters,
    Uncountable,
    counters_of,
)
from bot.delivery.deliverer import Deliverer
from bot.delivery.options import ActionButton, DeliveryOptions
from bot.delivery.outcomes import (
    CancelKind,
    CancelOutcome,
    DecisionRefused,
    DeliveryPolicy,
    Estimate,
    NoLongerPending,
    NotEditable,
    SendNotFound,
    StatusReport,
    StoreBusy,
    StoreInterrupted,
    StoreRefused,
)
from bot.delivery.recall import Recall
from bot.delivery.sends import Edit, Sends
from storage.models import Send, SendState, utcnow  # the rows and states the service hands up

__all__ = [
    "ActionButton",
    "DeliveryOptions",
    "TemplateRef",
    "Translation",
    "MAX_EXTERNAL_IDS",
    "MAX_SEGMENT_NAME",
    "MAX_TEXT_BYTES",
    "MAX_URL_LENGTH",
    "Audience",
    "CancelKind",
    "CancelOutcome",
    "Counted",
    "CountersRead",
    "Later",
    "SendCounters",
    "Uncountable",
    "counters_of",
    "DecisionRefused",
    "Deliverer",
    "DeliveryPolicy",
    "Edit",
    "Estimate",
    "Recall",
    "RejectedField",
    "SendContent",
    "NoLongerPending",
    "NotEditable",
    "SendNotFound",
    "Send",
    "SendRejected",
    "Sends",
    "SendState",
    "StatusReport",
    "StoreBusy",
    "StoreInterrupted",
    "StoreRefused",
    "notification_ids",
    "notification_name",
    "utcnow",
]
