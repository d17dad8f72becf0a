"""Per-account rate limits of the edges: calls per second (32013) and REGISTERs per second
(32008), spec §4.2 and §4.8. Twilio publishes neither number, so both are settings (0: no
limit)."""

from __future__ import annotations

import threading


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
