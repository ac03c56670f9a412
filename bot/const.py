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
SUB_DIAGNOSTICS: Final = "diagnostics"
SUB_SERIES: Final = "series"
SUB_EDIT: Final = "edit"
SUBCOMMANDS: Final[tuple[str, ...]] = (
    SUB_HELP,
    SUB_SEND,
    SUB_CANCEL,
    SUB_EDIT,
    SUB_USER,
    SUB_STATUS,
    SUB_ME,
    SUB_LIST,
    SUB_SERIES,
    SUB_SETUP,
    SUB_AUDIT,
    SUB_DIAGNOSTICS,
)
"""Every subcommand of the outside contract, in the order `/push help` lists them."""

# --- action ids (buttons and other interactive elements) ---------------------------------------
ACTION_DISMISS: Final = "pushops_dismiss"
"""A "Dismiss" button on an ephemeral reply: removes that reply."""

# --- /push setup: one modal whose content changes (home, app form, roles, approvals) ----------
CALLBACK_SETUP: Final = "pushops_setup"
"""The setup home: apps, log channel, approvals, roles."""
CALLBACK_SETUP_APP: Final = "pushops_setup_app"
"""Add an app, or replace an app's key; the key is checked with OneSignal before saving."""
CALLBACK_SETUP_ROLES: Final = "pushops_setup_roles"
CALLBACK_SETUP_POLICY: Final = "pushops_setup_policy"
ACTION_SETUP_ADD_APP: Final = "pushops_setup_add_app"
ACTION_SETUP_REPLACE_APP: Final = "pushops_setup_replace_app"
ACTION_SETUP_DEFAULT_APP: Final = "pushops_setup_default_app"
ACTION_SETUP_REMOVE_APP: Final = "pushops_setup_remove_app"
"""Buttons beside an app in the setup home. Value: the app's name."""
ACTION_SETUP_LOG_CHANNEL: Final = "pushops_setup_log_channel"
ACTION_SETUP_LOG_OFF: Final = "pushops_setup_log_off"
ACTION_SETUP_ROLES: Final = "pushops_setup_roles"
ACTION_SETUP_NAME_SENDERS: Final = "pushops_setup_name_senders"
"""The setup home's warning that everyone may send: the roles form, Sender chosen."""
ACTION_HELP_NAME_SENDERS: Final = "pushops_help_name_senders"
"""The same button in `/push help` for admins: opens the roles form in a new modal."""
ACTION_SETUP_POLICY: Final = "pushops_setup_policy"
ACTION_SETUP_BACK: Final = "pushops_setup_back"
"""A form's "Back": the setup home again, nothing saved."""
ACTION_SETUP_FIELD: Final = "pushops_setup_field"
"""Every input element of the setup forms (its block id says which field)."""
BLOCK_FINAL_NUMBERS: Final = "final_numbers"
BLOCK_SETUP_APP_NAME: Final = "setup_app_name"
BLOCK_SETUP_APP_ID: Final = "setup_app_id"
BLOCK_SETUP_APP_KEY: Final = "setup_app_key"
BLOCK_SETUP_APP_DEFAULT: Final = "setup_app_default"
BLOCK_SETUP_ROLE_CHANGE: Final = "setup_role_change"
BLOCK_SETUP_ROLE: Final = "setup_role"
BLOCK_SETUP_ROLE_USERS: Final = "setup_role_users"
BLOCK_SETUP_ROLE_GROUPS: Final = "setup_role_groups"
BLOCK_SETUP_POLICY_MODE: Final = "setup_policy_mode"
BLOCK_SETUP_POLICY_APPROVALS: Final = "setup_policy_approvals"
BLOCK_SETUP_POLICY_CHANNEL: Final = "setup_policy_channel"
BLOCK_SETUP_POLICY_USERS: Final = "setup_policy_users"

# --- events --------------------------------------------------------------------------------------
EVENT_APP_UNINSTALLED: Final = "app_uninstalled"
EVENT_TOKENS_REVOKED: Final = "tokens_revoked"
EVENT_APP_HOME_OPENED: Final = "app_home_opened"
"""Someone opened the app's Home (or Messages) tab: their Home is published."""

# --- OAuth ---------------------------------------------------------------------------------------
BOT_SCOPES: Final[tuple[str, ...]] = (
    "commands",  # /push
    "chat:write",  # chat.postMessage, chat.postEphemeral, chat.update
    "im:write",  # conversations.open (a DM to the requester or an approver)
    "users:read",  # users.info (time zone, admin flags)
    "usergroups:read",  # usergroups.users.list (approver groups)
    "files:write",  # files.getUploadURLExternal, files.completeUploadExternal (diagnostics)
)
"""The bot scopes PushOps asks for; manifest.yml lists the same (tests/test_manifest.py)."""

# --- HTTP paths ----------------------------------------------------------------------------------
PATH_EVENTS: Final = "/slack/events"
PATH_INSTALL: Final = "/slack/install"
PATH_OAUTH_REDIRECT: Final = "/slack/oauth_redirect"
PATH_HEALTHZ: Final = "/healthz"
PATH_READYZ: Final = "/readyz"
PATH_METRICS: Final = "/metrics"

# --- sends: preview, compose form, status, list, approvals, missed sends ----------------------
ACTION_SEND_CONFIRM: Final = "pushops_send_confirm"
""""Send" on a preview: the draft goes out (or to approval). Value: the send's UUID."""
ACTION_SEND_DISCARD: Final = "pushops_send_discard"
""""Cancel" on a preview: the draft is dropped. Value: the send's UUID."""
ACTION_STATUS_REFRESH: Final = "pushops_status_refresh"
""""Refresh" on a status reply. Value: the send's short id or OneSignal id."""
ACTION_LIST_CANCEL: Final = "pushops_list_cancel"
""""Cancel" beside a scheduled send in `/push list`. Value: the send's UUID."""
ACTION_APPROVE: Final = "pushops_approve"
ACTION_REJECT: Final = "pushops_reject"
"""Approve / Reject on an approval request. Value: the send's UUID."""
ACTION_CANCEL_SEND: Final = "pushops_cancel_send"
""""Cancel" (with a confirm dialog) on every message about a send that can still be stopped:
the log-channel post, the requester's reply and DMs, the approval request, the status reply,
the Home tab. Value: the send's UUID."""
ACTION_HOME_CANCEL: Final = "pushops_home_cancel"
ACTION_HOME_APPROVE: Final = "pushops_home_approve"
ACTION_HOME_REJECT: Final = "pushops_home_reject"
"""Cancel / Approve / Reject beside a send on the Home tab. Value: the send's UUID."""
ACTION_HOME_COMPOSE: Final = "pushops_home_compose"
"""The Home tab's "Compose": the compose form."""
ACTION_HOME_SETUP: Final = "pushops_home_setup"
"""The Home tab's "Set up PushOps" (admins): the setup form."""
ACTION_EDIT_SEND: Final = "pushops_edit_send"
""""Edit" on messages about an upcoming send (the requester's reply and DMs, `/push list`,
the Home tab): the compose form filled from it, saving into the same send. Value: its UUID."""
ACTION_SEND_AGAIN: Final = "pushops_send_again"
""""Send again" on a finished send: the compose form filled from it, as a new send. Value:
the finished send's UUID."""
ACTION_MISSED_SEND_NOW: Final = "pushops_missed_send_now"
ACTION_MISSED_DROP: Final = "pushops_missed_drop"
""""Send now" / "Drop" on the message about a missed send. Value: the send's UUID."""

ACTION_SERIES_PAUSE: Final = "pushops_series_pause"
ACTION_SERIES_RESUME: Final = "pushops_series_resume"
ACTION_SERIES_STOP: Final = "pushops_series_stop"
"""Pause / Resume / Stop beside a series in `/push series`. Value: the series' UUID."""
ACTION_SERIES_APPROVE: Final = "pushops_series_approve"
ACTION_SERIES_REJECT: Final = "pushops_series_reject"
"""Approve / Reject on a series' approval request. Value: the series' UUID."""

CALLBACK_COMPOSE: Final = "pushops_compose"
"""The compose form of `/push send` without arguments."""
CALLBACK_COMPOSE_EDIT: Final = "pushops_compose_edit"
"""The compose form filled from an upcoming send (`/push edit`, Edit): Save changes that send."""
CALLBACK_COMPOSE_PREVIEW: Final = "pushops_compose_preview"
"""The compose form's preview, pushed over it: Send (submit) or Back (close)."""
BLOCK_PREVIEW_FACTS: Final = "preview_facts"
CALLBACK_SEND_AS_PUSH: Final = "send_as_push"
"""The message shortcut "Send as push": the compose form with the message's text."""
CALLBACK_COMPOSE_PUSH: Final = "compose_push"
"""The global shortcut "Compose a push": the compose form, empty."""
ACTION_COMPOSE_APP: Final = "pushops_compose_app"
ACTION_COMPOSE_AUDIENCE: Final = "pushops_compose_audience"
"""An audience field of the compose form changed: re-estimate (every audience element)."""
ACTION_COMPOSE_FIELD: Final = "pushops_compose_field"
"""Any other compose form element (its block id says which field)."""
BLOCK_COMPOSE_APP: Final = "compose_app"
BLOCK_COMPOSE_TITLE: Final = "compose_title"
BLOCK_COMPOSE_MESSAGE: Final = "compose_message"
BLOCK_COMPOSE_SEGMENTS: Final = "compose_segments"
BLOCK_COMPOSE_EXCLUDE: Final = "compose_exclude"
BLOCK_COMPOSE_USERS: Final = "compose_users"
BLOCK_COMPOSE_URL: Final = "compose_url"
BLOCK_COMPOSE_IMAGE: Final = "compose_image"
BLOCK_COMPOSE_WHEN: Final = "compose_when"
BLOCK_COMPOSE_AT: Final = "compose_at"
BLOCK_COMPOSE_IN: Final = "compose_in"
BLOCK_COMPOSE_EVERY: Final = "compose_every"
BLOCK_COMPOSE_ENDS: Final = "compose_ends"
"""A recurring send from the form: its rule (`--every`) and its end (`--until` / `--times`)."""
BLOCK_COMPOSE_ESTIMATE: Final = "compose_estimate"
