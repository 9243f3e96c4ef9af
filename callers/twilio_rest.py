"""The official Twilio client over an async httpx transport.

Production talks to api.twilio.com; tests and the demo point ``api_base`` at the local
fake Twilio (callers.fake_twilio), or hand in an httpx transport that reaches it
in-process. Either way every REST call goes through twilio-python's own request
building, so what the fake records is what Twilio would receive.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from callers.settings import CallersSettings

TWILIO_API = "https://api.twilio.com"
_logger = logging.getLogger("callers.twilio")


class HttpxTwilioClient(AsyncHttpClient):
    """twilio-python's pluggable async HTTP client, implemented with httpx."""

    def __init__(
        self,
        *,
        api_base: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(_logger, is_async=True, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)

    def _rewrite(self, url: str) -> str:
        """Send api.twilio.com (and its regional hosts) to the configured base, if any."""
        if not self.api_base:
            return url
        scheme_host, _, rest = url.partition("://")[2].partition("/")
        if scheme_host.endswith("twilio.com"):
            return f"{self.api_base}/{rest}"
        return url

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio-python's interface
        allow_redirects: bool = False,
    ) -> Response:
        """Make one request the way twilio-python expects (form-encoded body, basic auth)."""
        response = await self._client.request(
            method.upper(),
            self._rewrite(uri),
            params=params,  # type: ignore[arg-type]
            data=data,  # type: ignore[arg-type]
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        # Never log bodies: they carry phone numbers.
        path = httpx.URL(uri).path
        _logger.info("twilio %s %s -> %s", method.upper(), path, response.status_code)
        return Response(response.status_code, response.text, response.headers)

    async def aclose(self) -> None:
        await self._client.aclose()


def build_twilio_client(
    settings: CallersSettings, transport: httpx.AsyncBaseTransport | None = None
) -> Client:
    """A Twilio REST client for the line's account over httpx."""
    http = HttpxTwilioClient(api_base=settings.twilio_api_base, transport=transport)
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        account_sid=settings.twilio_account_sid,
        http_client=http,
    )


async def close_twilio_client(client: Client) -> None:
    http: Any = client.http_client
    if isinstance(http, HttpxTwilioClient):
        await http.aclose()
