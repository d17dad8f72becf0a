"""Webhook connection overrides written as a URL fragment (spec §5.4).

``https://h/p#ct=2000&rt=5000&tt=12000&rc=3&rp=ct,rt,5xx`` tunes one URL: connect timeout,
read timeout, total time (ms), retry count, and which failures are retried. The fragment is
never sent and never signed. Values outside the plausible ranges are clamped; unknown keys
(``e`` egress edge, ``sni``) are accepted and ignored, since the twin has one egress.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urldefrag

from ..settings import Fidelity

RETRY_KINDS = frozenset({"ct", "rt", "4xx", "5xx", "all"})


@dataclass(frozen=True)
class ConnectionPolicy:
    connect_timeout: float  # seconds, per attempt
    read_timeout: float | None  # seconds between reads, per attempt
    total_timeout: float  # seconds for the whole exchange, retries included
    retries: int
    retry_on: frozenset[str]

    def retries_after(self, failure: str) -> bool:
        return "all" in self.retry_on or failure in self.retry_on


def _clamp_ms(raw: str, low: int, high: int) -> float | None:
    if not raw.isdigit():
        return None
    return min(max(int(raw), low), high) / 1000.0


def split_url(url: str, fidelity: Fidelity) -> tuple[str, ConnectionPolicy]:
    """The URL to request (fragment removed) and the policy its fragment asks for.

    Without overrides: Twilio's documented model - two connect attempts sharing the connect
    budget (10 s = 2 x 5 s), one retry on connect failure only, the whole exchange bounded by
    the total timeout (15 s).
    """
    bare, fragment = urldefrag(url)
    connect = float(fidelity.webhook_connect_timeout) / 2
    read: float | None = None
    total = float(fidelity.webhook_total_timeout)
    retries = 1
    retry_on = frozenset({"ct"})
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key == "ct":
            connect = _clamp_ms(value, 100, 10_000) or connect
        elif key == "rt":
            read = _clamp_ms(value, 100, 15_000) or read
        elif key == "tt":
            total = _clamp_ms(value, 100, 15_000) or total
        elif key == "rc" and value.isdigit():
            retries = min(int(value), 5)
        elif key == "rp":
            retry_on = frozenset(v.strip() for v in value.split(",")) & RETRY_KINDS or retry_on
    return bare, ConnectionPolicy(connect, read, total, retries, retry_on)
