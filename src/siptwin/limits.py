"""Resource limits: how much any one peer, or all of them together, may make the twin hold.

These are not fidelity settings (Twilio publishes none of them, and a PBX under test should
never meet them): they keep a twin that is probed, fuzzed or flooded alive and bounded. Every
limit has a default here, is listed by ``siptwin limits`` and is set with
``siptwin up --limit NAME=VALUE``; docs/security.md explains each.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Limits:
    # SIP over TCP and TLS (per connection)
    stream_idle_timeout: float = 300.0
    stream_header_timeout: float = 10.0
    tls_handshake_timeout: float = 10.0
    stream_write_high_water: int = 256 * 1024
    stream_write_limit: int = 4 * 1024 * 1024
    stream_write_stall: float = 10.0
    stream_send_buffer: int = 128 * 1024
    # SIP connections (per process)
    max_connections: int = 4096
    max_connections_per_source: int = 128
    reserved_descriptors: int = 256
    # SIP messages
    max_message_size: int = 65535
    udp_receive_buffer: int = 4 * 1024 * 1024
    # The REST API
    http_idle_timeout: float = 15.0
    # Overload (per region node): new calls are shed while both hold
    overload_lag: float = 0.25
    overload_message_rate: float = 1000.0
    overload_retransmissions: float = 0.2
    overload_retry_after: int = 1
    overload_queue_wait: float = 0.2

    def with_overrides(self, overrides: dict[str, Any]) -> Limits:
        """A copy with ``{"name": value}`` applied; values may be text (from the CLI)."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"unknown limit {name!r} (siptwin limits lists them)")
            kind = int if known[name].type in ("int", int) else float
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"limit {name} takes a number, not {value!r}") from None
            if number <= 0 and name != "reserved_descriptors":
                raise ValueError(f"limit {name} must be positive")
            changes[name] = number
        return replace(self, **changes)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def connection_cap(self) -> int:
        """``max_connections``, lowered so ``reserved_descriptors`` stay free for the REST
        API, UDP, media sockets and files when the process's descriptor limit is small."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - self.reserved_descriptors))


DESCRIPTIONS: dict[str, str] = {
    "stream_idle_timeout": "seconds a SIP TCP/TLS connection may carry nothing before it is closed",
    "stream_header_timeout": "seconds an accepted connection has to deliver its first whole "
                             "message, and any message has to finish once begun",
    "tls_handshake_timeout": "seconds a TLS handshake may take",
    "stream_write_high_water": "bytes of replies queued for a peer above which the twin stops "
                               "reading from it (the peer is not reading)",
    "stream_write_limit": "bytes of replies queued for a peer above which the connection is closed",
    "stream_write_stall": "seconds reading may stay stopped for a peer that does not read "
                          "before its connection is closed",
    "stream_send_buffer": "bytes the kernel may hold unsent for one SIP connection (SO_SNDBUF; "
                          "Linux's autotuning would let a peer that never reads park up to "
                          "4 MB there, unseen by the write limits above)",
    "max_connections": "open SIP TCP/TLS connections per process",
    "max_connections_per_source": "open SIP TCP/TLS connections from one source address",
    "reserved_descriptors": "file descriptors kept free of SIP connections (REST API, UDP, "
                            "media, files) under the process's RLIMIT_NOFILE",
    "max_message_size": "bytes of the largest SIP message accepted (larger: 513 when it "
                        "can be answered)",
    "udp_receive_buffer": "bytes of kernel receive buffer of a node's UDP socket (SO_RCVBUF; "
                          "above net.core.rmem_max only as root): a burst waits there, where "
                          "the node sees how long, instead of being dropped at random",
    "http_idle_timeout": "seconds an API connection may take to send a request's header "
                         "section, or stay idle before and between requests (aiohttp's "
                         "keep-alive timer bounds all three)",
    "overload_lag": "seconds the event loop may run late before a node that is also receiving "
                    "overload_message_rate sheds new calls (the overload_action setting)",
    "overload_message_rate": "SIP messages per second a node must be receiving before a late "
                             "event loop counts as overload (below it, lateness is the machine)",
    "overload_retransmissions": "share of a node's incoming requests that are retransmissions "
                                "above which it counts as overloaded (callers waited 500 ms "
                                "unanswered), when it also receives overload_message_rate",
    "overload_queue_wait": "the standing wait in a node's UDP receive buffer that it holds "
                           "while overloaded: past half of it, new calls are admitted at the "
                           "rate the node completes call setups (fewer while the wait is longer, "
                           "more while shorter) and the rest shed before parsing (the "
                           "overload_action setting); an INVITE that waited twice it on a busy "
                           "node is shed anyway",
    "overload_retry_after": "seconds in the Retry-After of a 503 for a call shed under overload",
}


def parse_limit_options(options: list[str] | None, base: Limits | None = None) -> Limits:
    """``["name=value", ...]`` from ``siptwin up --limit`` applied to ``base``."""
    overrides: dict[str, str] = {}
    for option in options or []:
        name, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"--limit takes NAME=VALUE, not {option!r}")
        overrides[name.strip()] = value.strip()
    return (base or Limits()).with_overrides(overrides)


__all__ = ["DESCRIPTIONS", "Limits", "parse_limit_options"]
