"""Per-account rate limits of the edges: calls per second (32013) and REGISTERs per second
(32008), spec §4.2 and §4.8. Twilio publishes neither number, so both are settings (0: no
limit)."""

from __future__ import annotations

import threading
from collections import deque


class RateLimit:
    """A token bucket per key (an account SID): ``rate`` requests a second, bursts of at most
    ``max(1, rate)``. Keys idle for a full bucket's time are forgotten, so the table stays as
    small as the set of accounts sending right now."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last update)
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def allow(self, key: str, rate: float, now: float) -> bool:
        if rate <= 0:
            return True
        burst = max(1.0, rate)
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if key not in self._buckets and len(self._buckets) >= self._max_keys:
                self._forget_full(now, rate, burst)
            self._buckets[key] = (tokens, now)
            return allowed

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * rate >= burst]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


class FailureWindow:
    """Failed attempts per key (a source address) in a sliding window: a key with ``limit``
    failures within ``window`` seconds is blocked until the oldest of them is ``window`` old.
    Each key keeps at most ``limit`` times, and the table at most ``max_keys`` keys (keys with
    nothing recent go first), so spoofed sources cannot grow it without bound."""

    def __init__(self, max_keys: int = 65_536) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def blocked_for(self, key: str, limit: int, window: float, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may now (or ``limit`` is 0: off)."""
        if limit <= 0:
            return 0.0
        with self._lock:
            times = self._failures.get(key)
            if times is None or len(times) < limit:
                return 0.0
            left = times[0] + window - now
            return left if left > 0 else 0.0

    def record(self, key: str, limit: int, window: float, now: float) -> None:
        if limit <= 0:
            return
        with self._lock:
            times = self._failures.get(key)
            if times is None or times.maxlen != limit:
                if len(self._failures) >= self._max_keys:
                    self._forget_old(now, window)
                times = self._failures[key] = deque(times or (), maxlen=limit)
            times.append(now)

    def _forget_old(self, now: float, window: float) -> None:
        old = [k for k, times in self._failures.items() if not times or times[-1] <= now - window]
        for key in old or list(self._failures)[: len(self._failures) // 2]:
            del self._failures[key]
