"""Pure Block Kit builders of the Slack surface: data in, blocks (or a view) out.

Nothing here talks to Slack, OneSignal or the database; the command modules fetch, these
draw, so the command that first shows a message and the handler that updates it agree.
"""
