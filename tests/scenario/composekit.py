"""What the compose form scenarios share: the form as Slack shows it (its fields as they start,
or as a person changed them) and its submission as Slack sends it."""

from __future__ import annotations

from typing import Any

from bot import const
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID, FakeSlack
from tests.plugins.slack import PushOps
from tests.scenario.sendkit import ALICE


def by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """block id -> block of a view."""
    return {block.get("block_id"): block for block in view["blocks"]}


def _state(element: dict[str, Any]) -> dict[str, Any]:
    """The state Slack reports for `element` untouched: what it started with."""
    kind = element["type"]
    state: dict[str, Any] = {"type": kind}
    if kind in ("plain_text_input", "url_text_input"):
        state["value"] = element.get("initial_value")
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
