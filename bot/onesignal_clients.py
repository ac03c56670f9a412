"""The one place PushOps builds its OneSignal clients: on the process's pooled connections, at
the configured base URL, with the retries the caller's situation allows.

Delivery, `/push user`, the setup form's key check and `pushops check` each ask here; none
builds a `OneSignalClient` itself, so every request shares the pool (and its timeouts and
request counting) and no caller forgets the base URL that tests and proxies point elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httpx
from pydantic import SecretStr

from bot.onesignal import OneSignalClient, RetryPolicy

PERSON_WAITING: Final = RetryPolicy(max_retries=1, max_delay=2.0)
"""Retries when a person waits for the answer (a lookup, a key check): one quick retry, then
"try again" is a fine answer."""


@dataclass(frozen=True)
class OneSignalClients:
    """Builds OneSignal clients that share `http` (None: each client makes and closes its own
    pool, as the CLI's one-off calls do) and call `base_url`."""

    http: httpx.AsyncClient | None
    base_url: str

    def client(
        self,
        rest_api_key: str | SecretStr,
        *,
        retries: RetryPolicy,
        organization_api_key: str | SecretStr | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> OneSignalClient:
        """A client calling with `rest_api_key` (and the organization key when given).

        `timeout` None waits as long as the pool was set to; only a tighter one is asked for.
        """
        return OneSignalClient(
            rest_api_key=rest_api_key,
            organization_api_key=organization_api_key,
            base_url=self.base_url,
            http_client=self.http,
            timeout=timeout,
            max_retries=retries.max_retries,
            retry_base_delay=retries.base_delay,
            retry_max_delay=retries.max_delay,
        )
