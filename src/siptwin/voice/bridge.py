"""The media of a ``<Dial>``ed leg, relayed to and from the caller's stream.

One RTP socket per ``<Dial>`` (all forks of it share the port offered in their INVITEs), on
the region's address. Once a branch answers, packets from the address its SDP names are sent
to the caller through :meth:`MediaStream.forward`, and the caller's packets to that address
(symmetric: to the port they come from once one has arrived). Payload types are rewritten
between the two sides' numbers for G.711 and RFC 4733 telephone-event, so digits cross too.
Bounded: no buffering, one packet in, one packet out; closed with the dial. A leg to a
device of a secure domain is SRTP (SDES, the twin's own key in the offer): its packets are
decrypted before they go to the caller and the caller's are protected before they go to it,
whatever the caller's own media is (the caller's stream does its side).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip.sdp import CryptoAttribute, SessionDescription, choose_crypto, parse_sdp
from .media import PCMA, PCMU, MediaStream, _port_pair

if TYPE_CHECKING:
    from .srtp import SrtpContext

log = logging.getLogger("siptwin.voice.bridge")


@dataclass
class _Side:
    audio: int  # the payload type of the agreed G.711 codec
    event: int | None  # telephone-event's, if any
    crypto: CryptoAttribute | str | None = None  # the answer's SDES key (str: why none)


def _leg_side(description: SessionDescription) -> tuple[tuple[str, int], _Side] | None:
    for media in description.media:
        if media.media != "audio" or media.port == 0:
            continue
        connection = description.connection_of(media)
        codecs = media.codecs()
        audio = next((c for c in codecs if c.is_("PCMU") or c.is_("PCMA")), None)
        if connection is None or audio is None:
            return None
        event = next((c for c in codecs if c.is_("telephone-event")), None)
        return ((connection.host, media.port),
                _Side(PCMA if audio.is_("PCMA") else PCMU,
                      event.payload_type if event else None,
                      choose_crypto(media) if media.is_srtp else None))
    return None


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, relay: LegMedia) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay._from_leg(data, addr)


class LegMedia:
    def __init__(self, local_host: str) -> None:
        self.local_host = local_host
        self._transport: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self._latched: tuple[str, int] | None = None
        self._leg: _Side | None = None
        self._caller: MediaStream | None = None
        self.srtp: SrtpContext | None = None  # the leg's SDES keys, when it is secure
        self.to_leg = self.from_leg = 0  # packets relayed each way
        self.bytes_to_leg = self.bytes_from_leg = 0
        self.note: str | None = None  # why audio cannot be relayed, if it cannot

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        rtp, rtcp, _ = _port_pair(self.local_host)
        if rtcp is not None:
            rtcp.close()  # the leg's RTCP is not relayed; the port stays free
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=rtp)
        return int(self._transport.get_extra_info("sockname")[1])

    def answered(self, sdp: bytes, ours: CryptoAttribute | None = None) -> None:
        """The winning branch's SDP answer: where its RTP goes and in which payload types;
        ``ours`` is the key the offer carried when the leg is SRTP."""
        try:
            found = _leg_side(parse_sdp(sdp))
        except ValueError:
            found = None
        if found is None:
            self.note = "the dialled party's answer has no usable G.711 audio"
            return
        remote, side = found
        if ours is not None:
            if not isinstance(side.crypto, CryptoAttribute):
                self.note = ("the dialled party answered the SRTP offer without a usable "
                             f"SDES key ({side.crypto or 'plain RTP/AVP'}): no audio relayed")
                return
            if side.crypto.suite != ours.suite:
                self.note = (f"the dialled party answered with SRTP suite {side.crypto.suite}, "
                             f"not the offered {ours.suite}: no audio relayed")
                return
            from .srtp import SrtpContext  # libsrtp is loaded only for secure legs

            self.srtp = SrtpContext(side.crypto, ours)
        self._remote, self._leg = remote, side

    def bridge(self, caller: MediaStream) -> None:
        """Start relaying between ``caller`` and the answered leg."""
        if self._leg is None or caller.plan is None:
            self.note = self.note or "the caller has no media to bridge"
            return
        if caller.plan.payload_type != self._leg.audio:
            self.note = ("the two legs agreed different G.711 laws; audio is relayed "
                         "without transcoding")
        self._caller = caller
        caller.relay = self._from_caller

    def close(self) -> None:
        if self._caller is not None and self._caller.relay == self._from_caller:
            self._caller.relay = None
        self._caller = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ------------------------------------------------------------------ relaying
    def _from_caller(self, packet: bytes) -> None:
        caller, leg = self._caller, self._leg
        if self._transport is None or caller is None or leg is None or caller.plan is None:
            return
        destination = self._latched or self._remote
        if destination is None:
            return
        plan = caller.plan
        out = _rewrite(packet, {plan.payload_type: leg.audio, plan.event_payload_type: leg.event})
        if out is None:
            return
        if self.srtp is not None:
            out = self.srtp.protect(out)
        self._transport.sendto(out, destination)
        self.to_leg += 1
        self.bytes_to_leg += len(out)

    def _from_leg(self, packet: bytes, source: tuple[str, int]) -> None:
        caller, leg = self._caller, self._leg
        if caller is None or leg is None or self._remote is None or caller.plan is None:
            return
        if len(packet) < 12 or packet[0] >> 6 != 2 or source[0] != self._remote[0]:
            return
        if self._latched is None:
            self._latched = source
        elif source != self._latched:
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(packet)
            if clear is None:
                return
            packet = clear
        plan = caller.plan
        out = _rewrite(packet, {leg.audio: plan.payload_type, leg.event: plan.event_payload_type})
        if out is None:
            return
        caller.forward(out)
        self.from_leg += 1
        self.bytes_from_leg += len(out)


def _rewrite(packet: bytes, mapping: dict[int | None, int | None]) -> bytes | None:
    """The packet with its payload type mapped to the other side's; None when the other side
    has no such payload (telephone-event not negotiated there, an unknown codec)."""
    payload_type = packet[1] & 0x7F
    if payload_type not in mapping:
        return None
    other = mapping[payload_type]
    if other is None:
        return None
    if other == payload_type:
        return packet
    return packet[:1] + bytes([(packet[1] & 0x80) | other]) + packet[2:]
