"""The compose form started with given values (a message turned into a push, the form again
after its preview's Back, a send to edit): what each field starts with, within Slack's limits
at the worst-case sizes."""

from datetime import UTC, datetime

from bot import const
from commands.views import compose, preview
from commands.views.sends import SendCard, audience_text
from storage.models import SendState
from tests.fakes import blockkit

DUE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _elements(view):
    return {b["block_id"]: b.get("element", {}) for b in view["blocks"]}


def test_each_field_starts_with_its_value():
    filled = compose.ComposeInput(
        title="Release",
        message="Version 2 is out",
        segments=("Active Users",),
        excluded=("Beta",),
        url="https://example.com/a",
        image="https://example.com/i.png",
        when=compose.WHEN_AT,
        at=DUE,
    )
    form = compose.ComposeForm(segments=("Active Users", "Beta"), filled=filled)

    elements = _elements(compose.compose_view(form))

    assert elements[const.BLOCK_COMPOSE_TITLE]["initial_value"] == "Release"
    assert elements[const.BLOCK_COMPOSE_MESSAGE]["initial_value"] == "Version 2 is out"
    assert elements[const.BLOCK_COMPOSE_SEGMENTS]["initial_options"][0]["value"] == "Active Users"
    assert elements[const.BLOCK_COMPOSE_EXCLUDE]["initial_options"][0]["value"] == "Beta"
    assert elements[const.BLOCK_COMPOSE_URL]["initial_value"] == "https://example.com/a"
    assert elements[const.BLOCK_COMPOSE_IMAGE]["initial_value"] == "https://example.com/i.png"
    assert elements[const.BLOCK_COMPOSE_WHEN]["initial_option"]["value"] == compose.WHEN_AT
    assert elements[const.BLOCK_COMPOSE_AT]["initial_date_time"] == int(DUE.timestamp())
    assert "initial_value" not in elements[const.BLOCK_COMPOSE_USERS]


def test_a_chosen_segment_the_list_lacks_is_typed_instead():
    filled = compose.ComposeInput(message="Hi", segments=("Gone", "Beta"))
    form = compose.ComposeForm(segments=("Active Users", "Beta"), filled=filled)

    segments = _elements(compose.compose_view(form))[const.BLOCK_COMPOSE_SEGMENTS]

    assert segments["type"] == "plain_text_input"
    assert segments["initial_value"] == "Gone, Beta"


def test_a_form_filled_at_the_worst_case_sizes_is_one_slack_takes():
    many = tuple(f"Segment {i:03} " + "x" * 60 for i in range(compose.MAX_OPTIONS))
    filled = compose.ComposeInput(
        title="T" * 3000,
        message="&<>" * 3000,
        segments=many,
        excluded=many[:50],
        external_ids=tuple(f"user-{i}-" + "y" * 100 for i in range(2000)),
        url="https://example.com/" + "u" * 3000,
        image="https://example.com/" + "i" * 3000,
        when=compose.WHEN_IN,
        in_="1h30m" * 700,
    )
    apps = tuple(f"app{i}" for i in range(compose.MAX_OPTIONS))
    form = compose.ComposeForm(apps=apps, app="app1", segments=many, filled=filled)

    view = compose.compose_view(form)

    assert blockkit.view_problems(view) == []
    assert len(_elements(view)[const.BLOCK_COMPOSE_MESSAGE]["initial_value"]) == 3000


def test_a_preview_at_the_worst_case_sizes_is_one_slack_takes():
    card = SendCard(
        send_id="5f0c3c5e-0000-4000-8000-000000000001",
        short_id="7K3M9Q",
        state=SendState.DRAFT,
        app_name="a" * 200,
        requester_id="U0ALICE",
        message="&<>" * 3000,
        title="<!channel>" * 300,
        url="https://example.com/" + "u" * 3000,
        image="https://example.com/" + "&" * 3000,
        audience=audience_text(external_ids=tuple("y" * 128 for _ in range(2000))),
        timezone="Pacific/Chatham",
        due_at=DUE,
        is_test=True,
        approvals_required=9,
    )
    facts = preview.PreviewFacts(
        estimate="estimate unavailable: " + "&" * 3000,
        approval="Needs 9 approvals in <#C0APPROVE> before it goes out.",
        metadata=preview.PreviewFacts().metadata + "x" * 100,
        external_id="preview-" + "f" * 40,
    )

    view = preview.preview_view(card, facts)

    assert blockkit.view_problems(view) == []
    assert "<!channel>" not in str(view)
