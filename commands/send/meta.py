"""The compose form's `private_metadata`: where to answer, which app is chosen, the send an
edit form saves into, and the template chosen with its text.

Slack hands it back with every action and the submission, so what the form learned after it
opened (the template's text, asked of OneSignal when it was picked) is at hand on submit
without asking OneSignal again before Slack's ack. None of it is trusted for authority: the
send an edit names and the template's id are checked again on submit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from bot.delivery import TemplateRef

SLACK_METADATA_LIMIT: Final = 3000
"""Characters Slack keeps of a view's `private_metadata`."""


@dataclass(frozen=True)
class Meta:
    """The form's `private_metadata` (see the module)."""

    channel: str | None = None
    app: str | None = None
    send: str | None = None
    template: TemplateRef | None = None

    def dump(self) -> str:
        """As JSON text; the template only when all of it fits Slack's limit (else it is
        asked of OneSignal again on submit)."""
        data: dict[str, Any] = {"channel": self.channel, "app": self.app}
        if self.send:
            data["send"] = self.send
        text = json.dumps(data)
        if self.template is not None:
            data["template"] = self.template.model_dump(exclude_none=True)
            with_template = json.dumps(data)
            if len(with_template) <= SLACK_METADATA_LIMIT:
                text = with_template
        return text

    @classmethod
    def load(cls, text: str) -> Meta:
        """From the view's metadata; empty when it is not ours."""
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        send = data.get("send")
        return cls(
            channel=data.get("channel") or None,
            app=data.get("app") or None,
            send=send if isinstance(send, str) and send else None,
            template=_template(data.get("template")),
        )

    @classmethod
    def of(cls, view: dict[str, Any] | None) -> Meta:
        """The metadata of a Slack view payload (empty without one)."""
        return cls.load((view or {}).get("private_metadata") or "")


def _template(data: Any) -> TemplateRef | None:
    try:
        return TemplateRef.model_validate(data) if isinstance(data, dict) else None
    except ValidationError:
        return None
