"""Keeping secrets out of error messages and log lines.

A platform can echo what it was sent (a login name in a 401, a form field in an OAuth error), and
exception text from the HTTP stack can carry URLs; everything the clients put in an exception or a
log record passes through a Redactor first.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterable

from yarl import URL

MASK = "[REDACTED]"


class Redactor:
    """Replaces every known secret, and the Basic-auth encoding of it, with a mask."""

    # Short-lived secrets (OAuth tokens) kept masked after they are replaced: late error messages
    # may still quote them, but a long-running process must not collect every token it ever had.
    ROTATING_KEPT = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._rotating: deque[str] = deque()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def add_rotating(self, secret: str) -> None:
        """A secret that replaces earlier ones of its kind; only the newest few stay masked."""
        if not secret or secret in self._secrets:
            return
        self._secrets.add(secret)
        self._rotating.append(secret)
        while len(self._rotating) > self.ROTATING_KEPT:
            self._secrets.discard(self._rotating.popleft())

    def add_basic(self, username: str, password: str) -> None:
        """The base64 of user:password is as good as the password itself."""
        if password:
            self.add(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))

    def __call__(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def display_url(url: str | URL) -> str:
    """A URL fit for a message: no user info, no query (it may carry search terms)."""
    parsed = URL(url) if isinstance(url, str) else url
    return str(parsed.with_user(None).with_query(None).with_fragment(None))
