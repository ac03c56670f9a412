"""Every identifier the Slack surface shares: subcommands, callback, action and block ids."""

from __future__ import annotations

from typing import Final

SLASH_COMMAND: Final = "/push"

# --- /push subcommands, as typed after the command -------------------------------------------
SUB_HELP: Final = "help"
SUB_SEND: Final = "send"
SUB_CANCEL: Final = "cancel"
SUB_USER: Final = "user"
SUB_STATUS: Final = "status"
SUB_ME: Final = "me"
SUB_LIST: Final = "list"
SUB_SETUP: Final = "setup"
SUB_AUDIT: Final = "audit"
SUBCOMMANDS: Final[tuple[str, ...]] = (
    SUB_HELP,
    SUB_SEND,
    SUB_CANCEL,
    SUB_USER,
    SUB_STATUS,
    SUB_ME,
    SUB_LIST,
    SUB_SETUP,
    SUB_AUDIT,
)
"""Every subcommand of the outside contract, in the order `/push help` lists them."""

# --- action ids (buttons and other interactive elements) ---------------------------------------
ACTION_DISMISS: Final = "pushops_dismiss"
"""A "Dismiss" button on an ephemeral reply: removes that reply."""

# --- events --------------------------------------------------------------------------------------
EVENT_APP_UNINSTALLED: Final = "app_uninstalled"
EVENT_TOKENS_REVOKED: Final = "tokens_revoked"

# --- OAuth ---------------------------------------------------------------------------------------
BOT_SCOPES: Final[tuple[str, ...]] = (
    "commands",  # /push
    "chat:write",  # chat.postMessage, chat.postEphemeral, chat.update
    "im:write",  # conversations.open (a DM to the requester or an approver)
    "users:read",  # users.info (time zone, admin flags)
    "usergroups:read",  # usergroups.users.list (approver groups)
)
"""The bot scopes PushOps asks for; manifest.yml lists the same (tests/test_manifest.py)."""

# --- HTTP paths ----------------------------------------------------------------------------------
PATH_EVENTS: Final = "/slack/events"
PATH_INSTALL: Final = "/slack/install"
PATH_OAUTH_REDIRECT: Final = "/slack/oauth_redirect"
PATH_HEALTHZ: Final = "/healthz"
PATH_READYZ: Final = "/readyz"
PATH_METRICS: Final = "/metrics"
