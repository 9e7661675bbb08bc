"""The tokens file: callers, scopes, constant-time lookup, errors that never show a token."""

from __future__ import annotations

import pytest

from server.transport.auth import TokenRegistry, TokensFileError

TOKENS = """
# name        token                              scopes
alerts        alerts-token-0123456789abcdef      write
dashboards    dash-token-0123456789abcdef        read
admin         admin-token-0123456789abcdef
"""


def test_tokens_map_to_callers_with_their_scopes() -> None:
    registry = TokenRegistry.parse(TOKENS)
    assert len(registry) == 3
    alerts = registry.authenticate("alerts-token-0123456789abcdef")
    assert alerts is not None and alerts.name == "alerts" and alerts.scopes == {"write"}
    dashboards = registry.authenticate("dash-token-0123456789abcdef")
    assert dashboards is not None and dashboards.scopes == {"read"}
    admin = registry.authenticate("admin-token-0123456789abcdef")
    assert admin is not None and admin.scopes == {"read", "write"}


@pytest.mark.parametrize("token", ["", "alerts", "alerts-token-0123456789abcdeF", "x" * 10_000])
def test_unknown_tokens_authenticate_nobody(token: str) -> None:
    assert TokenRegistry.parse(TOKENS).authenticate(token) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no callers defined"),
        ("alerts\n", "expected 'name token [scopes]'"),
        ("alerts short-token\n", "shorter than 16"),
        ("alerts canary-secret-token-123 admin\n", "scopes must be"),
        ("a canary-secret-token-123\na canary-secret-token-456\n", "defined twice"),
        ("bad/name canary-secret-token-123\n", "invalid caller name"),
    ],
)
def test_malformed_files_are_refused_without_echoing_tokens(text: str, problem: str) -> None:
    with pytest.raises(TokensFileError) as caught:
        TokenRegistry.parse(text, source="tokens.txt")
    assert problem in str(caught.value)
    assert "canary-secret" not in str(caught.value)
    assert str(caught.value).startswith("tokens.txt")
