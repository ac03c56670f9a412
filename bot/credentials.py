"""Checking OneSignal credentials before they are saved (the setup form and `pushops apps add`)."""

from __future__ import annotations

from enum import StrEnum

import httpx
from pydantic import SecretStr

from bot.onesignal import (
    BadRequest,
    Forbidden,
    NotFound,
    OneSignalAPIError,
    OneSignalTransportError,
    Unauthorized,
)
from bot.onesignal_clients import PERSON_WAITING, OneSignalClients

_VERIFY_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class CredentialProblem(StrEnum):
    """Why a OneSignal app could not be verified; the setup form maps each to a field error."""

    WRONG_KEY = "wrong_key"
    UNKNOWN_APP = "unknown_app"
    UNREACHABLE = "unreachable"


class CredentialError(Exception):
    """The app id and key were not confirmed by OneSignal; the message is for the user."""

    def __init__(self, problem: CredentialProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)


async def verify_onesignal_app(
    clients: OneSignalClients, *, app_id: str, rest_api_key: str | SecretStr
) -> None:
    """Ask OneSignal for one notification of `app_id` with `rest_api_key`; raise if refused.

    Raises `CredentialError` whose `problem` is wrong key (401/403), unknown app (404, or an
    app id OneSignal calls malformed) or unreachable (no answer, or a server error).
    """
    # A person is waiting: one quick retry at most, and "try again" is a fine answer.
    client = clients.client(rest_api_key, retries=PERSON_WAITING, timeout=_VERIFY_TIMEOUT)
    try:
        await client.get_notifications(app_id, limit=1)
    except (Forbidden, Unauthorized):
        raise CredentialError(
            CredentialProblem.WRONG_KEY,
            f"OneSignal refused this REST API key for app {app_id}: copy the key from that "
            "app's Settings > Keys & IDs in OneSignal.",
        ) from None
    except (NotFound, BadRequest):
        raise CredentialError(
            CredentialProblem.UNKNOWN_APP,
            f"OneSignal knows no app {app_id}: check the App ID in Settings > Keys & IDs.",
        ) from None
    except OneSignalTransportError as error:
        raise CredentialError(
            CredentialProblem.UNREACHABLE,
            f"OneSignal could not be reached at {clients.base_url} ({error.__class__.__name__}); "
            "check the network and try again.",
        ) from None
    except OneSignalAPIError as error:
        raise CredentialError(
            CredentialProblem.UNREACHABLE,
            f"OneSignal answered with HTTP {error.status} instead of checking the key; "
            "try again in a minute.",
        ) from None
    finally:
        await client.aclose()
