"""Whatever text follows /push, Slack gets a 200 at once and the user gets an answer."""

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot import const
from commands._parsing import split_command
from commands.context import CommandError

# Words that steer the parser into its corners: subcommands, options, quotes, escapes.
TRICKY = st.sampled_from(
    [
        *const.SUBCOMMANDS,
        "--segment",
        "--yes",
        "--",
        '"',
        "'",
        "\\",
        "&amp;",
        "&lt;",
        "<!channel>",
        "“",
        "’",
        "--title=",
        "HELP",
        "\n",
        "\t",
        "ünïcødé",
        "🚀",
    ]
)
COMMAND_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(TRICKY, max_size=8).map(" ".join),
    st.lists(st.one_of(TRICKY, st.text(max_size=10)), max_size=6).map(" ".join),
)


@settings(
    max_examples=50,
    deadline=None,
    # One served app answers every example: it keeps no state between commands.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=COMMAND_TEXT)
@example(text="SETUP")  # found by the fuzzer: a form, not a reply
async def test_any_text_is_acked_with_200_and_answered(pushops, text):
    assume(not _opens_a_form(text))  # tests/scenario/test_send_form.py and test_setup.py
    sent = await pushops.post_command(text)

    assert sent.response.status_code == 200
    reply = await sent.reply()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].strip()
    assert not reply["text"].startswith("Sorry, something went wrong")


def _opens_a_form(text: str) -> bool:
    """`/push send` or `/push setup` alone (any case, any spacing) answers with a form (the
    compose form; setup's home for an admin, as the fuzzing user is), not a reply."""
    try:
        return split_command(text) in {(const.SUB_SEND, ()), (const.SUB_SETUP, ())}
    except CommandError:
        return False


async def test_overlong_text_is_refused_with_its_length(pushops):
    sent = await pushops.post_command("send " + "x" * 5000)

    reply = await sent.reply()
    assert "5005 characters long; the limit is 4000" in reply["text"]
