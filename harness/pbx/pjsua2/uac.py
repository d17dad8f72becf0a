#!/usr/bin/env python3
"""A scripted UAC on pjsua2 (PyPI ``pjsua2-python``): one call to a SIP Domain through an
outbound proxy (the twin's edge address), with X- and User-to-User headers, RFC 4733 digits
once answered, then BYE.

Exit 0 when the call was answered (200) and ended by us; otherwise 1 with the last status
line, so that a CI step (or a ``device: command`` scenario step) fails on it.

    python3 uac.py --proxy 127.0.1.3:5060 --host acme.sip.ie1.twilio.com \\
        --user alice --password Harbour7Lights --header X-Site=ci --uui 56a3;encoding=hex \\
        --dtmf 123

pjsua2 quirks handled here: no audio device on a CI machine (``setNullDev``), no worker
threads (``threadCnt=0``, events polled), and calls/accounts deleted before ``libDestroy``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pjsua2 as pj

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from phone_args import call_parser  # noqa: E402 (harness/pbx, next to this folder)

TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
              "tls": pj.PJSIP_TRANSPORT_TLS}


class Call(pj.Call):
    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.disconnected = False
        self.status = 0
        self.reason = ""
        self.answered = False
        self.media_ready = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 (pjsua2's name)
        info = self.getInfo()
        self.disconnected = info.state == pj.PJSIP_INV_STATE_DISCONNECTED
        self.status, self.reason = info.lastStatusCode, info.lastReason
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered = True
        print(f"call state {info.stateText} last status {info.lastStatusCode} {info.lastReason}",
              flush=True)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        self.media_ready = any(m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                               for m in self.getInfo().media)


def main() -> int:
    parser = call_parser(__doc__.split("\n\n")[0], talk_seconds=3.0)
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--uui", help="User-to-User header value")
    parser.add_argument("--dtmf", default="", help="RFC 4733 digits sent once answered")
    args = parser.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.logConfig.level = 1
    config.logConfig.consoleLevel = 1
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
    if args.user:
        account_config.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    account = pj.Account()
    account.create(account_config)
    call = Call(account)
    param = pj.CallOpParam(True)
    headers = [tuple(h.split("=", 1)) for h in args.header]
    if args.uui:
        headers.append(("User-to-User", args.uui))
    for name, value in headers:
        header = pj.SipHeader()
        header.hName, header.hValue = name, value
        param.txOption.headers.append(header)

    ok = False
    try:
        call.makeCall(f"sip:{args.service}@{args.host}", param)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not call.answered and not call.disconnected:
            ep.libHandleEvents(20)
        if call.answered:
            _pump(ep, 0.5)
            if args.dtmf:
                digits = pj.CallSendDtmfParam()
                digits.method = pj.PJSUA_DTMF_METHOD_RFC2833
                digits.digits = args.dtmf
                call.sendDtmf(digits)
                print(f"sent RFC 4733 digits {args.dtmf}", flush=True)
            _pump(ep, args.seconds)
            if not call.disconnected:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, 1.0)
            ok = True
        else:
            print(f"not answered: {call.status} {call.reason}", flush=True)
            if not call.disconnected and call.status:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, 0.5)
    finally:
        del call  # before libDestroy, or pjsua2 aborts
        account.shutdown()
        del account
        ep.libDestroy()
    return 0 if ok else 1


def _pump(ep: pj.Endpoint, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ep.libHandleEvents(20)


if __name__ == "__main__":
    sys.exit(main())
