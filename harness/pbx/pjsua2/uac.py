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

import argparse
import sys
import time

import pjsua2 as pj

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", required=True, help="ADDR:PORT the packets go to")
    parser.add_argument("--host", required=True, help="the SIP Domain host of the Request-URI")
    parser.add_argument("--service", default="1000")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="udp")
    parser.add_argument("--bind", default="127.0.0.1", help="local address")
    parser.add_argument("--ca", help="CA file to trust (TLS)")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--uui", help="User-to-User header value")
    parser.add_argument("--dtmf", default="", help="RFC 4733 digits sent once answered")
    parser.add_argument("--seconds", type=float, default=3.0, help="talk time before BYE")
    parser.add_argument("--timeout", type=float, default=20.0)
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
            _pump(ep, args.seconds, call)
            if not call.disconnected:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, 1.0, call)
            ok = True
        else:
            print(f"not answered: {call.status} {call.reason}", flush=True)
            if not call.disconnected and call.status:
                call.hangup(pj.CallOpParam(True))
                _pump(ep, 0.5, call)
    finally:
        # A call that has ended leaves no transaction worth a second of libDestroy's waiting
        # for late messages.
        ended = call.disconnected
        del call  # before libDestroy, or pjsua2 aborts
        account.shutdown()
        del account
        ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG if ended else 0)
    return 0 if ok else 1


def _pump(ep: pj.Endpoint, seconds: float, call: Call | None = None) -> None:
    """Handle events for ``seconds``, or (``call`` given) until that call has ended: the
    far end may hang up first (a <Hangup/> after the digits), and waiting on is dead time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (call is not None and call.disconnected):
        ep.libHandleEvents(20)


if __name__ == "__main__":
    sys.exit(main())
