"""What the compose form scenarios share: the form as Slack shows it (its fields as they start,
or as a person changed them) and its submission as Slack sends it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot import const
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID, RESPONSE_URL, FakeSlack
from tests.plugins.slack import PushOps
from tests.scenario.sendkit import ALICE


def by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """block id -> block of a view."""
    return {block.get("block_id"): block for block in view["blocks"]}


def _state(element: dict[str, Any]) -> dict[str, Any]:
    """The state Slack reports for `element` untouched: what it started with."""
    kind = element["type"]
    state: dict[str, Any] = {"type": kind}
    if kind in ("plain_text_input", "url_text_input", "number_input"):
        state["value"] = element.get("initial_value")
    elif kind == "timepicker":
        state["selected_time"] = element.get("initial_time")
    elif kind == "multi_static_select":
        state["selected_options"] = element.get("initial_options") or []
    elif kind in ("static_select", "radio_buttons"):
        state["selected_option"] = element.get("initial_option")
    elif kind == "datetimepicker":
        state["selected_date_time"] = element.get("initial_date_time")
    return state


def shown_values(view: dict[str, Any], **typed: Any) -> dict[str, dict[str, Any]]:
    """The `view.state.values` of `view` as shown, with `typed` (block id -> new value: a text,
    a tuple of options, or an option's value) put in by the person."""
    values: dict[str, dict[str, Any]] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        state = _state(element)
        if block["block_id"] in typed:
            new = typed[block["block_id"]]
            if "selected_options" in state:
                state["selected_options"] = [{"value": v} for v in new]
            elif "selected_option" in state:
                state["selected_option"] = {"value": new}
            elif "selected_date_time" in state:
                state["selected_date_time"] = new
            elif "selected_time" in state:
                state["selected_time"] = new
            else:
                state["value"] = new
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def initial_message(view: dict[str, Any]) -> str | None:
    """What the Message field of a compose view starts with."""
    element = by_id(view)[const.BLOCK_COMPOSE_MESSAGE]["element"]
    return element.get("initial_value")


async def submit_shown(
    app: PushOps,
    fake: FakeSlack,
    view_id: str,
    values: dict[str, dict[str, Any]] | None = None,
    *,
    user: str = ALICE,
    callback_id: str | None = None,
) -> Any:
    """Submit the view the fake shows under `view_id` (with `values`, else as shown)."""
    shown = fake.view(view_id)
    assert shown is not None, f"no view {view_id} is shown"
    payload = signing.view_submission(
        callback_id=callback_id or str(shown["callback_id"]),
        user_id=user,
        team_id=DEFAULT_TEAM_ID,
        values=values if values is not None else shown_values(shown),
        private_metadata=str(shown.get("private_metadata") or ""),
        view_id=view_id,
    )
    return await app.post_action(payload)


def pushed_preview(fake: FakeSlack, response: Any) -> tuple[str, dict[str, Any]]:
    """(view id, view) of the preview a form's submission answered with (pushed over it)."""
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_action"] == "push", answer
    assert answer["view"]["callback_id"] == const.CALLBACK_COMPOSE_PREVIEW
    found = fake.view_by_external_id(answer["view"]["external_id"])
    assert found is not None
    return found


async def press_send(app: PushOps, fake: FakeSlack, preview_id: str, *, user: str = ALICE) -> Any:
    """Press Send on the preview shown under `preview_id`; Slack's answer closes the modal."""
    response = await submit_shown(app, fake, preview_id, {}, user=user)
    assert response.status_code == 200 and response.json() == {"response_action": "clear"}
    return response


def preview_facts(view: dict[str, Any]) -> str:
    """The preview's facts (audience, reach, when, approval) as one text."""
    block = by_id(view)[const.BLOCK_PREVIEW_FACTS]
    return "\n".join(field["text"] for field in block["fields"])


async def filled_preview(fake: FakeSlack, preview: dict[str, Any]) -> dict[str, Any]:
    """The preview once its reach is counted (filled in by its external id)."""
    external_id = preview["external_id"]
    update = await fake.wait_for(
        "views.update", where=lambda c: c.args.get("external_id") == external_id
    )
    view: dict[str, Any] = update.args["view"]
    return view


async def told(fake_slack: FakeSlack, *words: str) -> dict[str, Any]:
    """The requester's answer saying `words`: in the channel, in place of the preview
    message whose Send was pressed, or by DM (when another replica's scheduler delivered it
    first, the one answering says it is on its way and the DM says it was sent)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        methods = ("chat.postEphemeral", RESPONSE_URL, "chat.postMessage")
        for call in [c for method in methods for c in fake_slack.calls_to(method)]:
            if all(word in str(call.args.get("text")) for word in words):
                return dict(call.args)
        await asyncio.sleep(0.02)
    raise AssertionError(f"nobody was told {words!r}")
