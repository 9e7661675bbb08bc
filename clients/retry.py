"""Pure retry arithmetic: budgets, backoff and the servers' own wait hints.

Nothing here performs I/O or reads a clock it was not given, so every rule can be tested with plain
numbers; clients/http.py applies it to real requests.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from clients.settings import RetryPolicy

# An attempt squeezed into less time than this cannot get an answer from a remote platform, so a
# wait that leaves less is not worth sleeping through.
MIN_ATTEMPT_SECONDS = 0.05

# Retry-After is honoured as a floor; a little extra spreads out clients that were all told the
# same instant, which would otherwise hit the platform together again.
HINT_JITTER_FRACTION = 0.1

# Reset headers in seconds since the epoch are at least this large; smaller values are read as a
# delay, and far larger ones as milliseconds (seen in some gateways).
_EPOCH_SECONDS_FLOOR = 1_000_000_000
_EPOCH_MILLIS_FLOOR = 100_000_000_000


@dataclass(frozen=True)
class Budget:
    """When one public call must be over, and whose limit that is."""

    expires_at: float  # time.monotonic()
    caller_bound: bool  # the caller's deadline, not TimeoutConfig.total, sets expires_at

    @classmethod
    def start(cls, total: float, deadline: float | None, now: float | None = None) -> Budget:
        now = time.monotonic() if now is None else now
        own = now + total
        if deadline is not None and deadline <= own:
            return cls(expires_at=deadline, caller_bound=True)
        return cls(expires_at=own, caller_bound=False)

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.monotonic() if now is None else now)


def backoff_delay(
    attempts_made: int, policy: RetryPolicy, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter after `attempts_made` failed attempts (>= 1)."""
    exponent = max(attempts_made - 1, 0)
    # min() before the power would be wrong; guard the power against float overflow instead.
    try:
        computed = policy.initial_delay * policy.multiplier**exponent
    except OverflowError:
        computed = math.inf
    capped = min(computed, policy.max_delay)
    return rand() * capped if policy.jitter else capped


def plan_wait(
    attempts_made: int,
    policy: RetryPolicy,
    hint: float | None,
    remaining: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to sleep before the next attempt, or None when retrying must stop now.

    hint is the server's own wait (Retry-After or a reset header), honoured as a floor unless it
    exceeds max_delay. None is returned rather than a shortened wait when the wait would not leave
    room for another attempt inside the budget: waking early into a rate limit only fails again.
    """
    if attempts_made >= policy.max_attempts:
        return None
    if hint is not None:
        base = min(max(hint, 0.0), policy.max_delay)
        wait = min(base + rand() * base * HINT_JITTER_FRACTION, policy.max_delay)
        wait = max(wait, base)
    else:
        wait = backoff_delay(attempts_made, policy, rand)
    if wait + MIN_ATTEMPT_SECONDS > remaining:
        return None
    return wait


def parse_retry_after(value: str, now: float, server_now: float | None = None) -> float | None:
    """Seconds to wait per a Retry-After header: delta-seconds or an HTTP-date.

    now is time.time(); server_now, the response's Date header, is preferred for HTTP-dates so a
    skewed local clock does not shorten the wait.
    """
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    at = _http_date(value)
    if at is None:
        return None
    return max(at - (server_now if server_now is not None else now), 0.0)


def parse_rate_limit_reset(value: str, now: float) -> float | None:
    """Seconds until a X-RateLimit-Reset instant: unix seconds (ServiceNow) or ISO-8601 (Jira)."""
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:
            return None
        if number >= _EPOCH_MILLIS_FLOOR:
            number /= 1000.0
        if number < _EPOCH_SECONDS_FLOOR:
            return number
        return max(number - now, 0.0)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None  # an instant without a zone is a guess; fall back to backoff
    return max(at.timestamp() - now, 0.0)


def server_hint(headers: Mapping[str, str], now: float) -> float | None:
    """The server's requested wait, if it stated one. Retry-After wins over a reset header."""
    server_now = _http_date(headers.get("Date", ""))
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        parsed = parse_retry_after(retry_after, now, server_now)
        if parsed is not None:
            return parsed
    reset = headers.get("X-RateLimit-Reset")
    if reset is not None:
        return parse_rate_limit_reset(reset, now)
    return None


def _http_date(value: str) -> float | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()
