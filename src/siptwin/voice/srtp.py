"""SRTP and SRTCP for one call keyed by SDES (RFC 4568, RFC 3711), through libsrtp.

Two libsrtp sessions per call: one protects what the twin sends with its own key, the other
authenticates and decrypts what the caller sends with the key from its ``a=crypto`` line.
Packets that fail authentication or replay checks are dropped and counted, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

import pylibsrtp

from ..sip.sdp import CryptoAttribute

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


@dataclass
class SrtpCounters:
    # Inbound packets dropped: failed authentication (wrong key, tampered, plain RTP) ...
    rejected: int = 0  # RTP
    rejected_rtcp: int = 0  # RTCP (e.g. baresip's plain "PING" APP packet before SRTCP)
    # ... or repeated: libsrtp's replay check (linphone resends the RFC 4733 end packet
    # with the same sequence number, which SRTP must drop)
    replayed: int = 0


class SrtpContext:
    """``protect``/``unprotect`` for RTP and RTCP with the keys of one SDES exchange."""

    def __init__(self, theirs: CryptoAttribute, ours: CryptoAttribute) -> None:
        self.suite = ours.suite
        self.keys = (theirs.suite, theirs.key, ours.suite, ours.key)
        self._outbound = pylibsrtp.Session(_policy(ours, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._inbound = pylibsrtp.Session(_policy(theirs, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.counters = SrtpCounters()

    def protect(self, packet: bytes) -> bytes:
        return self._outbound.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._outbound.protect_rtcp(packet)

    def unprotect(self, packet: bytes) -> bytes | None:
        try:
            return self._inbound.unprotect(packet)
        except pylibsrtp.Error as err:
            if "replay" in str(err):
                self.counters.replayed += 1
            else:
                self.counters.rejected += 1
            return None

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        try:
            return self._inbound.unprotect_rtcp(packet)
        except pylibsrtp.Error:
            self.counters.rejected_rtcp += 1
            return None


def _policy(crypto: CryptoAttribute, ssrc_type: int) -> pylibsrtp.Policy:
    profile = _PROFILES.get(crypto.suite)
    if profile is None:
        raise ValueError(f"unsupported SRTP suite {crypto.suite}")
    return pylibsrtp.Policy(key=crypto.key, ssrc_type=ssrc_type, srtp_profile=profile)
