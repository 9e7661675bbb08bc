"""ServiceNow authentication: basic auth and OAuth bearer tokens from /oauth_token.do."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.basicauth import basic_credentials, bearer_token, same_secret
from sandbox.servicenow.settings import ServiceNowSandboxAuth
from sandbox.servicenow.store import SnUser

REFRESH_TTL_SECONDS = 100 * 24 * 3600  # the instance's default refresh token lifespan


@dataclass(frozen=True)
class _Grant:
    user: SnUser
    expires_at: float  # monotonic


@dataclass(frozen=True)
class TokenAnswer:
    status: int
    body: dict[str, Any]


_DENIED = TokenAnswer(401, {"error_description": "access_denied", "error": "server_error"})


class _BoundedTokens:
    """Tokens by value, forgetting the oldest beyond `limit` so a token loop cannot grow memory."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._grants: OrderedDict[str, _Grant] = OrderedDict()

    def add(self, token: str, grant: _Grant) -> None:
        self._grants[token] = grant
        while len(self._grants) > self._limit:
            self._grants.popitem(last=False)

    def valid(self, token: str, now: float) -> _Grant | None:
        grant = self._grants.get(token)
        if grant is None:
            return None
        if grant.expires_at <= now:
            del self._grants[token]
            return None
        return grant


class ServiceNowAuth:
    def __init__(
        self,
        settings: ServiceNowSandboxAuth,
        max_tokens: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._access = _BoundedTokens(max_tokens)
        self._refresh = _BoundedTokens(max_tokens)
        self._user = SnUser(settings.user)

    def authenticate(self, authorization: str | None) -> SnUser | None:
        """The user behind an Authorization header, or None (the caller answers 401)."""
        token = bearer_token(authorization)
        if token is not None:
            grant = self._access.valid(token, self._clock())
            return grant.user if grant else None
        credentials = basic_credentials(authorization)
        if credentials is not None and self._is_user(*credentials):
            return self._user
        return None

    def _is_user(self, user: str, password: str) -> bool:
        # Evaluate both comparisons so timing does not reveal which one failed.
        user_ok = same_secret(user, self._settings.user)
        password_ok = same_secret(password, self._settings.password)
        return user_ok and password_ok

    def _is_client(self, form: Mapping[str, str], authorization: str | None) -> bool:
        # Client credentials come in the form or as HTTP basic (requests-oauthlib's default).
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        header = basic_credentials(authorization)
        if header is not None and not client_secret:
            client_id, client_secret = header
        id_ok = same_secret(client_id, self._settings.client_id)
        secret_ok = same_secret(client_secret, self._settings.client_secret)
        return id_ok and secret_ok

    def grant(self, form: Mapping[str, str], authorization: str | None) -> TokenAnswer:
        """Answer a POST /oauth_token.do form."""
        grant_type = form.get("grant_type", "")
        if grant_type not in ("password", "refresh_token", "client_credentials"):
            return TokenAnswer(
                400,
                {"error": "unsupported_grant_type", "error_description": "access_denied"},
            )
        if not self._is_client(form, authorization):
            return _DENIED
        if grant_type == "password":
            if not self._is_user(form.get("username", ""), form.get("password", "")):
                return _DENIED
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            if self._refresh.valid(refresh, self._clock()) is None:
                return _DENIED
            # Not rotated: the refresh token stays good for its whole lifespan.
            return TokenAnswer(200, self._issue(refresh))
        return TokenAnswer(200, self._issue(None))

    def _issue(self, refresh: str | None) -> dict[str, Any]:
        now = self._clock()
        access = secrets.token_urlsafe(32)
        ttl = self._settings.token_ttl_seconds
        self._access.add(access, _Grant(self._user, now + ttl))
        if refresh is None:
            refresh = secrets.token_urlsafe(32)
            self._refresh.add(refresh, _Grant(self._user, now + REFRESH_TTL_SECONDS))
        return {
            "access_token": access,
            "refresh_token": refresh,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": ttl,
        }
