"""Where requests came from and where responses go (RFC 3261 §18.2, RFC 3581 rport)."""

from __future__ import annotations

from dataclasses import dataclass

from .frozen import quicken
from .headers import Via
from .message import Request
from .uri import DEFAULT_PORTS


@dataclass(frozen=True, slots=True)
class Hop:
    transport: str  # "udp", "tcp", "tls"
    host: str
    port: int


quicken(Hop)


def stamp_received(request: Request, source_host: str, source_port: int) -> None:
    """Record the packet's real source in the top Via (§18.2.1, RFC 3581 §4).

    ``received`` is added when the sent-by host differs from the source address, or always
    when the client asked for ``rport``, which then gets the source port.
    """
    via = request.top_via
    updates: dict[str, str | None] = {}
    if via.wants_rport:
        updates["rport"] = str(source_port)
        updates["received"] = source_host
    elif via.host.strip("[]") != source_host:
        updates["received"] = source_host
    if not updates:
        return
    request.replace_top_via(via.with_params(**updates))


def stamped_hop(request: Request, transport: str, source_host: str, source_port: int) -> Hop:
    """``stamp_received`` and then ``response_hop``, as a UAS does with every request: for a
    Via asking for rport (SIPp and most PBXs send it) the hop is the one the stamp has just
    written - the packet's source, unless a maddr overrides it - so the stamped Via is not
    read back. Anything else takes the two steps."""
    vias = request._views.get("via")  # (decoded on every validated request)
    via = vias[0] if vias else request.top_via
    # via.with_params(rport=..., received=...), inlined: the parameters but those two (in
    # any case), then the two, in that order; the same pass finds whether rport is asked
    # for (via.wants_rport), which the two or three parameters make cheaper than a second
    params: list[tuple[str, str | None]] = []
    maddr_named = wants_rport = False
    for param in via.params:
        name = param[0].lower()
        if name == "rport":
            wants_rport = True
        elif name != "received":
            params.append(param)
            maddr_named = maddr_named or name == "maddr"
    if not wants_rport or not source_host or source_port < 0:
        stamp_received(request, source_host, source_port)
        return response_hop(request, transport, source_host, source_port)
    params.append(("rport", str(source_port)))
    params.append(("received", source_host))
    stamped = Via(via.protocol, via.transport, via.host, via.port, tuple(params))
    request.replace_top_via(stamped)
    if transport in ("tcp", "tls"):
        return _hop(transport, source_host, source_port)
    maddr = stamped.maddr if maddr_named else None
    if maddr:
        return _hop(transport, maddr, stamped.port or DEFAULT_PORTS["sip"])
    return _hop(transport, source_host, source_port or stamped.port or DEFAULT_PORTS["sip"])


def response_hop(request: Request, transport: str, source_host: str, source_port: int) -> Hop:
    """Where to send responses to ``request`` received from (source_host, source_port).

    Stream transports answer on the connection the request came in on; UDP follows §18.2.2:
    maddr, then received with rport, then the sent-by.
    """
    if transport in ("tcp", "tls"):
        return _hop(transport, source_host, source_port)
    via = request.top_via
    for name, _ in via.params:
        if name.lower() in _ROUTING_PARAMS:
            break
    else:  # neither maddr nor received (nor rport, which only counts with received)
        return _hop(transport, via.host.strip("[]"), via.port or DEFAULT_PORTS["sip"])
    if via.maddr:
        return _hop(transport, via.maddr, via.port or DEFAULT_PORTS["sip"])
    if via.received:
        port = via.rport or via.port or DEFAULT_PORTS["sip"]
        return _hop(transport, via.received, port)
    return _hop(transport, via.host.strip("[]"), via.port or DEFAULT_PORTS["sip"])


_ROUTING_PARAMS = frozenset({"maddr", "received", "rport"})

# One Hop per peer, shared: every transaction keeps its peer for up to 64*T1, and a PBX's
# requests all come from the same few addresses. Cleared when full (a flood of sources, or
# a load tester's port per call: kept small, as the Hops and their keys it holds are so many
# objects for every pass of the cyclic collector to walk).
_HOPS: dict[tuple[str, str, int], Hop] = {}
_HOPS_MAX = 256


def _hop(transport: str, host: str, port: int) -> Hop:
    key = (transport, host, port)
    hop = _HOPS.get(key)
    if hop is None:
        if len(_HOPS) >= _HOPS_MAX:
            _HOPS.clear()
        hop = _HOPS[key] = Hop(transport, host, port)
    return hop
