#!/usr/bin/env python3
"""A scripted UAC on pjsua2 (PyPI ``pjsua2-python``): one call to a SIP Domain through an
outbound proxy (the twin's edge address), with X- and User-to-User headers, optionally
SDES-SRTP, a tone sent and what it hears recorded, hold and resume by re-INVITE, RFC 4733
digits once answered (after the resume when there is a hold), then BYE unless the far end
hung up first.

Exit 0 when the call was answered (200), every re-INVITE was answered 200 and, with
``--srtp mandatory``, SRTP was active; otherwise 1 with the reason, so that a CI step (or a
``device: command`` scenario step) fails on it. ``--report`` prints one last line,
``report {json}``: what happened, pjsua2's SRTP status and its RTP counters.

    python3 uac.py --proxy 127.0.1.3:5060 --host acme.sip.ie1.twilio.com \\
        --user alice --password Harbour7Lights --header X-Site=ci --uui 56a3;encoding=hex \\
        --dtmf 123
    python3 uac.py --proxy 127.0.1.1:5061 --transport tls --ca twin.crt --srtp mandatory \\
        --host vault.sip.twilio.com --user alice --password ... --tone 440 --record heard.wav \\
        --hold-at 3 --hold-for 2 --dtmf 123 --seconds 10 --report

pjsua2 quirks handled here: no audio device on a CI machine (``setNullDev``), no worker
threads (``threadCnt=0``, events polled), and calls/accounts deleted before ``libDestroy``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import tempfile
import time
import wave
from array import array
from pathlib import Path

import pjsua2 as pj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from phone_args import call_parser  # noqa: E402 (harness/pbx, next to this folder)

TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
              "tls": pj.PJSIP_TRANSPORT_TLS}
SRTP = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
        "mandatory": pj.PJMEDIA_SRTP_MANDATORY}


class Call(pj.Call):
    def __init__(self, account: pj.Account, tone_hz: float, record: str | None) -> None:
        super().__init__(account)
        self.disconnected = False
        self.status = 0
        self.reason = ""
        self.answered = False
        self.media_ready = False
        self.tone_hz = tone_hz
        self.record = record
        self.tone: pj.ToneGenerator | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.audio_index: int | None = None
        self.media_states: list[str] = []  # "active", "local-hold", ... as pjsua2 saw them
        self.reinvites: list[int] = []  # final status of each re-INVITE we sent
        self.reinvite_pending = False
        self.srtp = ""  # the crypto suite pjsua2 reports for the audio stream
        self.stats: dict[str, int] = {}

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 (pjsua2's name)
        info = self.getInfo()
        self.disconnected = info.state == pj.PJSIP_INV_STATE_DISCONNECTED
        self.status, self.reason = info.lastStatusCode, info.lastReason
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered = True
        print(f"call state {info.stateText} last status {info.lastStatusCode} {info.lastReason}",
              flush=True)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802
        """The final answer to a re-INVITE of ours (a 2xx ends the client transaction at
        once, any other status first completes it)."""
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE or not self.reinvite_pending:
            return
        tsx = event.body.tsxState.tsx
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE" or tsx.statusCode < 200:
            return
        if tsx.state == pj.PJSIP_TSX_STATE_COMPLETED or (
                tsx.state == pj.PJSIP_TSX_STATE_TERMINATED and tsx.statusCode < 300):
            self.reinvite_pending = False
            self.reinvites.append(tsx.statusCode)
            print(f"re-INVITE answered {tsx.statusCode}", flush=True)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        names = {pj.PJSUA_CALL_MEDIA_NONE: "none", pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
                 pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local-hold",
                 pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote-hold",
                 pj.PJSUA_CALL_MEDIA_ERROR: "error"}
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            self.media_states.append(names.get(media.status, str(media.status)))
            print(f"audio media {self.media_states[-1]}", flush=True)
            if media.status not in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD):
                continue
            self.media_ready = True
            self.audio_index = index
            self._connect(self.getAudioMedia(index))
            suite = re.search(r"Crypto-suite\s*:\s*(\S+)", self.dump(True, ""))
            if suite:
                self.srtp = suite.group(1)

    def _connect(self, audio: pj.AudioMedia) -> None:
        """The stream's conference port may be new after a re-INVITE: connect it again."""
        if self.tone_hz and self.tone is None:
            self.tone = pj.ToneGenerator()
            self.tone.createToneGenerator()
            desc = pj.ToneDesc()
            desc.freq1 = desc.freq2 = int(self.tone_hz)
            desc.on_msec, desc.off_msec, desc.volume = 30000, 0, 0
            tones = pj.ToneDescVector()
            tones.append(desc)
            self.tone.play(tones, True)
        if self.record and self.recorder is None:
            self.recorder = pj.AudioMediaRecorder()
            self.recorder.createRecorder(self.record)
        if self.tone is not None:
            self.tone.startTransmit(audio)
        if self.recorder is not None:
            audio.startTransmit(self.recorder)

    def sample(self) -> None:
        """Keep the stream's counters while it exists (they vanish with the call)."""
        if self.audio_index is None or self.disconnected:
            return
        try:
            stat = self.getStreamStat(self.audio_index)
        except pj.Error:
            return
        self.stats = {"rx_packets": stat.rtcp.rxStat.pkt, "tx_packets": stat.rtcp.txStat.pkt,
                      "rx_lost": stat.rtcp.rxStat.loss, "rx_discarded": stat.rtcp.rxStat.discard}


def main() -> int:
    parser = call_parser(__doc__.split("\n\n")[0], talk_seconds=3.0)
    parser.add_argument("--srtp", choices=sorted(SRTP), default="off",
                        help="SDES-SRTP (RFC 4568); mandatory needs --transport tls")
    parser.add_argument("--crypto", action="append", default=[],
                        help="offer only these SRTP suites (default: pjsua2's own list)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--uui", help="User-to-User header value")
    parser.add_argument("--tone", type=float, default=0.0, metavar="HZ",
                        help="send this tone for the whole call")
    parser.add_argument("--record", metavar="WAV", help="record what the call hears")
    parser.add_argument("--expect-tone", type=float, metavar="HZ",
                        help="fail unless the call heard this tone (for --expect-seconds)")
    parser.add_argument("--expect-seconds", type=float, default=1.0)
    parser.add_argument("--hold-at", type=float, metavar="SECONDS",
                        help="put the call on hold (re-INVITE a=sendonly) this long after "
                             "the answer; digits wait for the resume")
    parser.add_argument("--hold-for", type=float, default=2.0, metavar="SECONDS",
                        help="then resume (re-INVITE a=sendrecv) after this long")
    parser.add_argument("--dtmf", default="", help="RFC 4733 digits sent once answered")
    parser.add_argument("--report", action="store_true",
                        help="print 'report {json}' last: states, SRTP suite, RTP counters")
    args = parser.parse_args()
    if args.expect_tone and not args.record:
        args.record = os.path.join(tempfile.mkdtemp(prefix="uac-"), "heard.wav")

    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.logConfig.level = 1
    config.logConfig.consoleLevel = 1
    config.medConfig.noVad = True  # the tone, not silence suppression, decides what is sent
    ep.libInit(config)
    transport = pj.TransportConfig()
    transport.boundAddress = args.bind
    transport.publicAddress = args.bind
    if args.transport == "tls" and args.ca:
        transport.tlsConfig.CaListFile = args.ca
        transport.tlsConfig.verifyServer = True
    ep.transportCreate(TRANSPORTS[args.transport], transport)
    ep.audDevManager().setNullDev()
    ep.libStart()

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{args.user or 'pjsua'}@{args.host}"
    account_config.sipConfig.proxies.append(f"sip:{args.proxy};lr;transport={args.transport}")
    account_config.mediaConfig.transportConfig.boundAddress = args.bind
    # pjsua2 starts every process at RTP port 4000: two phones running side by side (xdist)
    # then share 4000-4003 one after the other, and pjmedia follows RTP arriving from a new
    # address (NAT latching), so one phone can end up sending its digits to the other's twin.
    account_config.mediaConfig.transportConfig.port = random.randrange(20000, 60000, 2)
    account_config.mediaConfig.transportConfig.portRange = 100
    account_config.mediaConfig.srtpUse = SRTP[args.srtp]
    # 1: SRTP only over a secure (TLS) hop, as RFC 4568 keys must not travel in clear text.
    account_config.mediaConfig.srtpSecureSignaling = 1 if args.srtp != "off" else 0
    if args.crypto:
        cryptos = pj.SrtpCryptoVector()
        for name in args.crypto:
            crypto = pj.SrtpCrypto()
            crypto.name = name
            cryptos.append(crypto)
        account_config.mediaConfig.srtpOpt.cryptos = cryptos
    if args.user:
        account_config.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    account = pj.Account()
    account.create(account_config)
    call = Call(account, args.tone, args.record)
    param = pj.CallOpParam(True)
    headers = [tuple(h.split("=", 1)) for h in args.header]
    if args.uui:
        headers.append(("User-to-User", args.uui))
    for name, value in headers:
        header = pj.SipHeader()
        header.hName, header.hValue = name, value
        param.txOption.headers.append(header)

    failure = ""
    digits_sent = ""
    try:
        call.makeCall(f"sip:{args.service}@{args.host}", param)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not call.answered and not call.disconnected:
            ep.libHandleEvents(20)
        if call.answered:
            _pump(ep, call, 0.5)
            if args.hold_at is not None:
                failure = _hold_and_resume(ep, call, args.hold_at, args.hold_for)
            if args.dtmf and not call.disconnected and not failure:
                digits = pj.CallSendDtmfParam()
                digits.method = pj.PJSUA_DTMF_METHOD_RFC2833
                digits.digits = args.dtmf
                call.sendDtmf(digits)
                digits_sent = args.dtmf
                print(f"sent RFC 4733 digits {args.dtmf}", flush=True)
            _pump(ep, call, args.seconds)
            if not call.disconnected:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, call, 1.0)
            if args.srtp == "mandatory" and not call.srtp and not failure:
                failure = "SRTP was not active on the audio stream"
        else:
            failure = f"not answered: {call.status} {call.reason}"
            if not call.disconnected and call.status:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, call, 0.5)
        if failure:
            print(failure, flush=True)
        if args.report:
            print("report " + json.dumps({
                "answered": call.answered, "status": call.status, "reason": call.reason,
                "media_states": call.media_states, "reinvites": call.reinvites,
                "srtp": call.srtp, "stats": call.stats, "digits_sent": digits_sent,
                "failure": failure}), flush=True)
    finally:
        call.recorder = None  # closing the recorder completes the WAV file
        call.tone = None
        # A call that has ended leaves no transaction worth a second of libDestroy's waiting
        # for late messages.
        ended = call.disconnected
        del call  # before libDestroy, or pjsua2 aborts
        account.shutdown()
        del account
        ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG if ended else 0)
    if args.expect_tone and not failure:
        heard = _seconds_of_tone(args.record, args.expect_tone)
        print(f"heard {heard:.1f} s of {args.expect_tone:g} Hz", flush=True)
        if heard < args.expect_seconds:
            failure = f"heard {heard:.1f} s of {args.expect_tone:g} Hz, not {args.expect_seconds:g}"
            print(failure, flush=True)
    return 1 if failure else 0


def _seconds_of_tone(path: str, frequency: float) -> float:
    """How much of a recording is ``frequency``: 100 ms windows, loud, with at least half
    their energy at that frequency (Goertzel against Parseval's total)."""
    try:
        with wave.open(path) as recorded:
            rate = recorded.getframerate()
            samples = array("h", recorded.readframes(recorded.getnframes()))
    except (OSError, EOFError, wave.Error):
        return 0.0
    size = rate // 10
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    windows = 0
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start:start + size]
        energy = sum(s * s for s in window)
        if max(abs(s) for s in window) < 1000 or not energy:
            continue
        previous = before = 0.0
        for sample in window:
            previous, before = sample + coefficient * previous - before, previous
        power = previous * previous + before * before - coefficient * previous * before
        # a pure tone gives power = size * energy / 2
        if power >= 0.25 * size * energy:
            windows += 1
    return windows / 10


def _hold_and_resume(ep: pj.Endpoint, call: Call, hold_at: float, hold_for: float) -> str:
    """Hold (pjsua2 offers a=sendonly) and resume (a=sendrecv); the reason if either failed."""
    _pump(ep, call, hold_at)
    for step, what in enumerate(("hold", "resume")):
        if call.disconnected:
            return f"the call ended before the {what}"
        began = time.monotonic()
        call.reinvite_pending = True
        if what == "hold":
            call.setHold(pj.CallOpParam(True))
        else:
            resume = pj.CallOpParam(True)
            resume.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(resume)
        print(what, flush=True)
        if not _pump(ep, call, 5.0, lambda step=step: len(call.reinvites) > step):
            return f"the {what} re-INVITE was not answered"
        if call.reinvites[step] != 200:
            return f"the {what} re-INVITE was answered {call.reinvites[step]}"
        # on hold for hold_for seconds; after the resume, the new stream starts before digits
        _pump(ep, call, max(0.0, hold_for - (time.monotonic() - began)) if what == "hold"
              else 0.5)
    return ""


def _pump(ep: pj.Endpoint, call: Call, seconds: float, until=None) -> bool:
    """Handle events for ``seconds`` (sampling the call's counters), or until ``until()``
    or the call's end; True when ``until`` came true."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ep.libHandleEvents(20)
        call.sample()
        if until is not None and until():
            return True
        if call.disconnected:
            break
    return until is None or until()


if __name__ == "__main__":
    sys.exit(main())
