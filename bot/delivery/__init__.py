"""The send services between the Slack surface and OneSignal (docs/design.md, invariants 1-4b).

`SendService` creates, confirms, approves, delivers, cancels and reports sends;
`SendContent` and `Audience` validate what a send says and to whom; `Send` and `SendState`
are the stored sends it hands up (the Slack surface imports nothing from `storage`). Nothing
here imports Slack: outcomes reach people through `bot.notifier.Notifier`.

    content.py   SendContent, Audience, SendRejected (OneSignal's limits), languages
    options.py   DeliveryOptions: time zone or intelligent delivery, throttle, buttons, data
    templates.py OneSignal's templates of an app, listed and kept briefly
    outcomes.py  Estimate, CancelOutcome, StatusReport, SendNotFound, StoreBusy,
                 StoreRefused, StoreInterrupted, DeliveryPolicy
    service.py   SendService
    attempt.py   one delivery attempt, and the check rounds of a send OneSignal has not
                 answered about
    answers.py   what OneSignal's answers mean, and which leave a send's outcome unknown
    writer.py    delivery results written many per transaction
    apps.py      a OneSignal client per app on one shared pool, keys kept briefly
    recall.py    cancelling at OneSignal, reading counters, finding notifications by name
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
from bot.delivery.options import ActionButton, DeliveryOptions
from bot.delivery.outcomes import (
    CancelKind,
    CancelOutcome,
    DecisionRefused,
    DeliveryPolicy,
    Estimate,
    NoLongerPending,
    SendNotFound,
    StatusReport,
    StoreBusy,
    StoreInterrupted,
    StoreRefused,
)
from bot.delivery.service import SendService, Timers
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
    "DecisionRefused",
    "DeliveryPolicy",
    "Estimate",
    "RejectedField",
    "SendContent",
    "NoLongerPending",
    "SendNotFound",
    "Send",
    "SendRejected",
    "SendService",
    "SendState",
    "StatusReport",
    "StoreBusy",
    "StoreInterrupted",
    "StoreRefused",
    "Timers",
    "notification_ids",
    "notification_name",
    "utcnow",
]
