"""Authorization header providers: static basic/bearer, and ServiceNow's OAuth password grant."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass

from clients.errors import ErrorKind, PlatformError
from clients.http import Call, Request, SendFn
from clients.redaction import Redactor
from clients.settings import Credentials

# Refresh this long before expiry (or a tenth of the lifetime, for short-lived tokens), so a token
# never expires between being read and reaching the platform.
REFRESH_MARGIN_SECONDS = 60.0


class StaticAuth:
    """Basic (user:password, Jira Cloud email:api_token) or bearer (Jira PAT) credentials."""

    def __init__(self, credentials: Credentials, redactor: Redactor) -> None:
        if credentials.kind == "basic":
            raw = f"{credentials.username}:{credentials.password}".encode()
            self._header = "Basic " + base64.b64encode(raw).decode("ascii")
            redactor.add_basic(credentials.username, credentials.password)
        elif credentials.kind == "bearer":
            self._header = f"Bearer {credentials.token}"
        else:
            raise ValueError(f"credentials kind {credentials.kind!r} is not static")
        for secret in credentials.secrets():
            redactor.add(secret)

    async def authorization(self, call: Call, send: SendFn) -> str:
        return self._header

    def invalidate(self, header: str) -> bool:
        return False  # the same credentials would be refused again


@dataclass(frozen=True)
class _Token:
    access: str
    refresh: str
    refresh_at: float  # time.monotonic()


class OAuthPasswordGrant:
    """Bearer tokens from POST /oauth_token.do, refreshed before expiry, one fetch at a time."""

    def __init__(
        self, credentials: Credentials, redactor: Redactor, token_path: str = "/oauth_token.do"
    ) -> None:
        if credentials.kind != "oauth":
            raise ValueError("OAuthPasswordGrant needs oauth credentials")
        self._creds = credentials
        self._redact = redactor
        self._path = token_path
        self._token: _Token | None = None
        # Concurrent calls that find the token stale wait for one fetch instead of each
        # starting their own (which would also invalidate each other's refresh tokens).
        self._lock = asyncio.Lock()
        for secret in credentials.secrets():
            redactor.add(secret)

    async def authorization(self, call: Call, send: SendFn) -> str:
        token = self._token
        if token is None or time.monotonic() >= token.refresh_at:
            async with self._lock:
                token = self._token
                if token is None or time.monotonic() >= token.refresh_at:
                    token = await self._fetch(call, send, token)
                    self._token = token
        return f"Bearer {token.access}"

    def invalidate(self, header: str) -> bool:
        token = self._token
        if token is not None and header == f"Bearer {token.access}":
            self._token = None
        return True

    async def _fetch(self, call: Call, send: SendFn, stale: _Token | None) -> _Token:
        if stale is not None and stale.refresh:
            try:
                return await self._grant(
                    call,
                    send,
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": stale.refresh,
                    },
                )
            except PlatformError as err:
                if err.kind is not ErrorKind.AUTH and err.kind is not ErrorKind.PAYLOAD_REJECTED:
                    raise
                # A refresh token can be revoked or expire before the access token's owner
                # notices; the password grant still works then.
        return await self._grant(
            call,
            send,
            {
                "grant_type": "password",
                "username": self._creds.username,
                "password": self._creds.password,
            },
        )

    async def _grant(self, call: Call, send: SendFn, form: dict[str, str]) -> _Token:
        form = {**form, "client_id": self._creds.client_id, "client_secret": self._creds.client_secret}
        # Token requests change nothing a retry could duplicate, so they count as idempotent.
        request = Request("token", "POST", self._path, form=form, authenticated=False)
        try:
            response = await send(call, request)
        except PlatformError as err:
            if err.status in (400, 401):
                raise err.evolve(kind=ErrorKind.AUTH, message=f"OAuth token: {err.message}") from None
            raise
        data = response.data if isinstance(response.data, dict) else {}
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise PlatformError(
                platform="servicenow",
                operation=call.operation,
                kind=ErrorKind.BAD_RESPONSE,
                status=response.status,
                message="OAuth token response has no access_token",
                attempts=call.attempts,
            )
        refresh = data.get("refresh_token") if isinstance(data.get("refresh_token"), str) else ""
        self._redact.add_rotating(access)
        self._redact.add_rotating(refresh or "")
        lifetime = _float(data.get("expires_in"), default=1799.0)
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
        return _Token(access, refresh or "", time.monotonic() + lifetime - margin)


def _float(value: object, default: float) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
