"""One authenticated call placed with pjsua2, the way an application embedding PJSIP would:
the host name resolved through a chosen name server (NAPTR/SRV/A), TLS verified against the
twin's certificate. Prints one line, ``RESULT`` and JSON: the states, the last SIP status, the Call-ID.

    python3 pjsua2_call.py --nameserver 198.18.250.1 --transport tls --ca twin.crt \\
        --user alice --password ... sip:1000@acme.sip.ie1.twilio.com
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pjsua2 as pj


class Account(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.register_status = 0

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 (pjsua2's name)
        self.register_status = prm.code


class Call(pj.Call):
    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.states: list[str] = []
        self.last_status = 0
        self.call_id = ""
        self.over = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 (pjsua2's name)
        info = self.getInfo()
        self.states.append(info.stateText)
        self.last_status = info.lastStatusCode
        self.call_id = info.callIdString
        self.over = info.state == pj.PJSIP_INV_STATE_DISCONNECTED


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("uri")
    args.add_argument("--nameserver", required=True)
    args.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    args.add_argument("--ca")
    args.add_argument("--user", required=True)
    args.add_argument("--password", required=True)
    args.add_argument("--timeout", type=float, default=20)
    args.add_argument("--register", action="store_true",
                      help="REGISTER (to the domain's non-localized name) before calling")
    opts = args.parse_args()

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0  # events are handled below, on this thread only
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.nameserver.append(opts.nameserver)  # SRV lookups need a name server
    config.logConfig.level = 3
    config.logConfig.consoleLevel = 3
    endpoint.libInit(config)
    kind = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
            "tls": pj.PJSIP_TRANSPORT_TLS}[opts.transport]
    transport = pj.TransportConfig()
    transport.port = 0
    if opts.transport == "tls":
        transport.tlsConfig.CaListFile = opts.ca
        transport.tlsConfig.verifyServer = True  # the certificate must name the host
        transport.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
    endpoint.transportCreate(kind, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()  # no sound card here

    account_config = pj.AccountConfig()
    domain = opts.uri.split("@", 1)[1].split(";", 1)[0]
    account_config.idUri = f"sip:{opts.user}@{domain}"
    account_config.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", "sip.twilio.com", opts.user, 0, opts.password))
    if opts.register:
        label = domain.split(".sip.", 1)[0]
        account_config.regConfig.registrarUri = f"sip:{label}.sip.twilio.com;transport={opts.transport}"
        account_config.regConfig.timeoutSec = 600
    account = Account()
    account.create(account_config)
    deadline = time.monotonic() + opts.timeout
    while opts.register and not account.register_status and time.monotonic() < deadline:
        endpoint.libHandleEvents(20)
    call = Call(account)
    call.makeCall(f"{opts.uri};transport={opts.transport}", pj.CallOpParam(True))
    deadline = time.monotonic() + opts.timeout
    while time.monotonic() < deadline and not call.over:
        endpoint.libHandleEvents(20)
    if not call.over and call.isActive():
        call.hangup(pj.CallOpParam(True))
        for _ in range(50):
            endpoint.libHandleEvents(20)
    print("RESULT " + json.dumps({"states": call.states, "last_status": call.last_status,
                                  "call_id": call.call_id,
                                  "register_status": account.register_status}), flush=True)
    # pjsua2 aborts in libDestroy while calls or accounts are alive: delete them first.
    del call
    account.shutdown()
    del account
    endpoint.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
