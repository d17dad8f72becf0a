"""A deliberately naive UAC for live tests: it sends exactly the requests a test builds.

No transaction layer: nothing is retransmitted, ACKed or answered unless the test does it,
so a test can replay credentials, withhold an ACK or send a BYE for a dialog that does not
exist. Every datagram received is parsed and kept in arrival order.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from siptwin.sip.errors import SipParseError
from siptwin.sip.message import Request, Response, make_request, parse_datagram
from siptwin.sip.sdp import make_offer
from siptwin.sip.transaction import build_ack, new_branch
from siptwin.ua.client import contact_uri


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: RawUac) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse_datagram(data)
        except SipParseError:
            return
        self.owner.received.append((message, addr))
        self.owner._arrived.set()


@dataclass
class Leg:
    """The identity of one call as the UAC sends it."""

    uri: str
    call_id: str
    from_value: str
    to_value: str
    cseq: int = 0


class RawUac:
    def __init__(self, local_host: str = "127.0.0.1") -> None:
        self.local_host = local_host
        self.received: list[tuple[Request | Response, tuple[str, int]]] = []
        self._arrived = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def __aenter__(self) -> RawUac:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.local_host, 0))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------------------ building
    def via(self, branch: str | None = None) -> str:
        return (f"SIP/2.0/UDP {self.local_host}:{self.port};"
                f"branch={branch or new_branch()};rport")

    def leg(self, uri: str, to_uri: str | None = None) -> Leg:
        return Leg(uri, f"{secrets.token_hex(8)}@{self.local_host}",
                   f"<sip:raw@{self.local_host}>;tag={secrets.token_hex(4)}",
                   f"<{to_uri or uri}>")

    def request(self, leg: Leg, method: str, *, headers: Sequence[tuple[str, str]] = (),
                body: bytes = b"", to_value: str | None = None, uri: str | None = None,
                cseq: int | None = None) -> Request:
        if cseq is None:
            leg.cseq += 1
            cseq = leg.cseq
        return make_request(method, uri or leg.uri, [
            ("Via", self.via()), ("Max-Forwards", "70"),
            ("From", leg.from_value), ("To", to_value or leg.to_value),
            ("Call-ID", leg.call_id), ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:raw@{self.local_host}:{self.port}>"),
            *headers,
            *([("Content-Type", "application/sdp")] if body.startswith(b"v=0") else []),
        ], body)

    def invite(self, leg: Leg, *, headers: Sequence[tuple[str, str]] = (),
               to_value: str | None = None, offer: bool = True) -> Request:
        body = make_offer(self.local_host, 20000, 1) if offer else b""
        return self.request(leg, "INVITE", headers=headers, body=body, to_value=to_value)

    # ------------------------------------------------------------------ sending
    def send(self, message: Request | Response | bytes, destination: tuple[str, int]) -> None:
        assert self._transport is not None
        data = message if isinstance(message, bytes) else message.to_bytes()
        self._transport.sendto(data, destination)

    def ack_failure(self, invite: Request, response: Response,
                    destination: tuple[str, int]) -> None:
        """The ACK of a 3xx-6xx answer (same branch), so the node stops retransmitting it."""
        self.send(build_ack(invite, response), destination)

    def ack_success(self, leg: Leg, invite: Request, ok: Response,
                    destination: tuple[str, int]) -> None:
        """The ACK of a 2xx: a request of its own in the dialog (new branch, INVITE's CSeq)."""
        self.send(self.in_dialog(leg, "ACK", ok, cseq=invite.cseq.number), destination)

    def in_dialog(self, leg: Leg, method: str, ok: Response, *, cseq: int | None = None,
                  headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> Request:
        """A request inside the dialog ``ok`` established (To with the node's tag)."""
        return self.request(leg, method, headers=headers, body=body, cseq=cseq,
                            to_value=dialog_to(ok), uri=contact_uri(ok) or leg.uri)

    # ------------------------------------------------------------------ receiving
    async def wait_for(self, predicate: Callable[[Request | Response], bool],
                       timeout: float = 5.0, start: int = 0) -> Request | Response | None:
        """The first message received (from index ``start``) that satisfies ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = start
        while True:
            while index < len(self.received):
                message = self.received[index][0]
                index += 1
                if predicate(message):
                    return message
            left = deadline - loop.time()
            if left <= 0:
                return None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return None

    def responses_to(self, request: Request) -> list[Response]:
        """Responses received so far whose Via branch and CSeq match ``request``."""
        branch = request.top_via.branch
        number = request.cseq.number
        return [m for m, _ in self.received if isinstance(m, Response)
                and m.top_via.branch == branch and m.cseq.number == number
                and m.cseq.method == request.method]

    async def transact(self, request: Request, destination: tuple[str, int],
                       timeout: float = 5.0) -> list[Response]:
        """Send ``request`` once; every response to it until the final one (or timeout)."""
        self.send(request, destination)
        branch = request.top_via.branch

        def final(m: Request | Response) -> bool:
            return (isinstance(m, Response) and m.status >= 200
                    and m.top_via.branch == branch and m.cseq.method == request.method)

        await self.wait_for(final, timeout)
        return _unique(self.responses_to(request))

    def requests(self, method: str, call_id: str) -> list[Request]:
        return [m for m, _ in self.received if isinstance(m, Request)
                and m.method == method and m.call_id == call_id]


def _unique(responses: list[Response]) -> list[Response]:
    """Drop retransmitted copies of a response (same status and To tag)."""
    seen: set[tuple[int, str | None]] = set()
    out = []
    for r in responses:
        key = (r.status, r.to.tag)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def statuses(responses: list[Response]) -> list[int]:
    return [r.status for r in responses]


def dialog_to(response: Response) -> str:
    """The To value (with the node's tag) for requests inside the dialog."""
    return response.headers.get("To") or ""
