"""A minimal digest-authenticating UAS built only from the SIP core and the transport.

It exists to prove the core against real clients (SIPp, sipsak, baresip): INVITE is challenged
with 407 exactly as Twilio does (realm "sip.twilio.com", qop="auth", nonce, opaque), then
answered 180 + 200 with an SDP answer; ACK, BYE, CANCEL and OPTIONS are handled.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from siptwin.sip.admission import admit
from siptwin.sip.digest import (
    NonceCountTracker,
    NonceIssuer,
    NonceStatus,
    compute_ha1,
    make_challenge,
    make_opaque,
    nonce_context,
    verify,
)
from siptwin.sip.message import Request, Response, make_response
from siptwin.sip.routing import response_hop, stamp_received
from siptwin.sip.sdp import NoCommonCodec, answer_offer, parse_sdp
from siptwin.sip.validate import UasPolicy
from siptwin.transport.endpoint import EndpointConfig, SipEndpoint, Source

REALM = "sip.twilio.com"


@dataclass
class CallLog:
    challenged: int = 0
    authenticated: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    acks: int = 0
    byes: int = 0
    methods: list[str] = field(default_factory=list)


class MinimalUas:
    def __init__(self, host: str, users: dict[str, str]) -> None:
        self.ha1 = {user: compute_ha1(user, REALM, password) for user, password in users.items()}
        self.nonces = NonceIssuer(secrets.token_bytes(32))
        self.counts = NonceCountTracker()
        self.opaque = make_opaque()
        self.policy = UasPolicy()
        self.log = CallLog()
        self.endpoint = SipEndpoint(EndpointConfig(host, 0, 0, None), self.on_message)
        self.answer_delay = 0.05

    async def start(self) -> None:
        await self.endpoint.start()

    async def close(self) -> None:
        await self.endpoint.close()

    @property
    def udp_port(self) -> int:
        return self.endpoint.udp_address[1]

    @property
    def tcp_port(self) -> int:
        assert self.endpoint.tcp_address is not None
        return self.endpoint.tcp_address[1]

    def on_message(self, data: bytes, source: Source) -> None:
        outcome = admit(data, self.policy, datagram=source.transport == "udp")
        if outcome.reply is not None:
            self.endpoint.send_now(outcome.reply.to_bytes(), source.reply_to)
            return
        request = outcome.message
        if not isinstance(request, Request):
            return
        stamp_received(request, source.host, source.port)
        self.log.methods.append(request.method)
        reply = self._handle(request, source)
        hop = response_hop(request, source.transport, source.host, source.port)
        for response in reply:
            self.endpoint.send_now(response.to_bytes(), hop)

    def _handle(self, request: Request, source: Source) -> list[Response]:
        method = request.method
        if method == "ACK":
            self.log.acks += 1
            return []
        if method == "BYE":
            self.log.byes += 1
            return [make_response(request, 200)]
        if method == "OPTIONS":
            return [make_response(request, 200, extra=(("Allow", self.policy.allow_header),))]
        if method == "CANCEL":
            return [make_response(request, 200)]
        if method != "INVITE":
            return [make_response(request, 200)]
        # 100 Trying quenches INVITE retransmissions, which only unreliable transports have;
        # on TCP the final answer follows at once (and sipsak cannot read two coalesced
        # responses from one TCP segment).
        trying = [make_response(request, 100)] if source.transport == "udp" else []
        return [*trying, *self._invite(request, source)]

    def _invite(self, request: Request, source: Source) -> list[Response]:
        now = time.time()
        context = nonce_context(request.call_id, source.host)
        to_tag = secrets.token_hex(4)
        credentials = [c for c in request.credentials("Proxy-Authorization") if c.is_digest]
        if not credentials:
            return [self._challenge(request, now, context, stale=False)]
        cred = credentials[0]
        status = self.nonces.check(cred.nonce or "", now, REALM, context)
        if status is NonceStatus.INVALID:
            return [self._challenge(request, now, context, stale=False)]
        ha1 = self.ha1.get(cred.username or "")
        result = verify(cred, "INVITE", ha1) if ha1 else None
        if result is None or not result.ok:
            self.log.rejected.append(cred.username or "")
            return [make_response(request, 403, to_tag=to_tag,
                                  extra=(("X-Twilio-Error", "32202 Bad user credentials"),))]
        if status is NonceStatus.STALE:
            return [self._challenge(request, now, context, stale=True)]
        if cred.nc is not None and not self.counts.accept(cred.nonce or "", cred.nc):
            return [make_response(request, 403, to_tag=to_tag)]
        self.log.authenticated.append(cred.username or "")
        body = b""
        if request.body:
            answer = answer_offer(parse_sdp(request.body), self.endpoint.config.host, 40000, 1)
            if isinstance(answer, NoCommonCodec):
                return [make_response(request, 488, to_tag=to_tag)]
            body = answer.to_bytes()
        host, port = self.endpoint.udp_address
        contact = (("Contact", f"<sip:{host}:{port}>"),)
        ok = make_response(request, 200, to_tag=to_tag, body=body,
                           extra=(*contact, ("Content-Type", "application/sdp")))
        # Ring briefly before answering, as a phone (or Twilio fetching TwiML) does; it also
        # keeps 180 and 200 in separate TCP segments, which sipsak needs.
        hop = response_hop(request, source.transport, source.host, source.port)
        asyncio.get_running_loop().call_later(
            self.answer_delay, self.endpoint.send_now, ok.to_bytes(), hop
        )
        return [make_response(request, 180, to_tag=to_tag, extra=contact)]

    def _challenge(self, request: Request, now: float, context: bytes, stale: bool) -> Response:
        self.log.challenged += 1
        nonce = self.nonces.issue(now, REALM, context)
        challenge = make_challenge(REALM, nonce, self.opaque, stale=stale)
        return make_response(request, 407, to_tag=secrets.token_hex(4),
                             extra=(("Proxy-Authenticate", challenge.to_header()),
                                    ("Server", "siptwin")))
