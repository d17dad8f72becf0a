"""A pjsua2 phone registered on a SIP domain that answers the first call: run as a process.

    python3 pjsua2_phone.py EDGE_HOST EDGE_PORT USER PASSWORD DOMAIN WAV_OUT SECONDS

It registers USER@DOMAIN through the edge (an outbound proxy, so no DNS is needed), prints
``registered`` once the twin has said 200, answers the first INVITE, plays a 1 kHz tone into
it and records what it hears to WAV_OUT. When the call ends (or SECONDS pass) it prints one
JSON line with the RTP counters of the call's audio stream and exits. With the environment
variable PJSUA2_PHONE_SRTP=mandatory it accepts SDES-SRTP offers only. pjsua2's quirks: the
null audio device, no worker threads (events are polled here), calls and accounts deleted
before libDestroy.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import pjsua2 as pj

TONE_HZ = 1000


class Phone(pj.Account):
    def __init__(self, endpoint: pj.Endpoint, recorder_path: str) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.recorder_path = recorder_path
        self.calls: list[Call] = []
        self.registered = False

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        if prm.code == 200 and not self.registered:
            self.registered = True
            print("registered", flush=True)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self, prm.callId)
        self.calls.append(call)
        op = pj.CallOpParam()
        op.statusCode = 180 if len(self.calls) > 1 else 200
        call.answer(op)


class Call(pj.Call):
    def __init__(self, account: Phone, call_id: int) -> None:
        super().__init__(account, call_id)
        self.account = account
        self.tone: pj.ToneGenerator | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.media_index: int | None = None
        self.stats: dict[str, int] = {}
        self.disconnected = False
        self.invite_text = ""

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            audio = self.getAudioMedia(index)
            if self.tone is None:
                self.tone = pj.ToneGenerator()
                self.tone.createToneGenerator()
                desc = pj.ToneDesc()
                desc.freq1, desc.freq2 = TONE_HZ, TONE_HZ
                desc.on_msec, desc.off_msec, desc.volume = 10000, 0, 0
                tones = pj.ToneDescVector()
                tones.append(desc)
                self.tone.play(tones, True)
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.account.recorder_path)
            self.tone.startTransmit(audio)
            audio.startTransmit(self.recorder)
            self.media_index = index

    def sample(self) -> None:
        """Keep the stream's counters while it exists (they vanish with the call)."""
        if self.media_index is None or self.disconnected:
            return
        try:
            stat = self.getStreamStat(self.media_index)
        except pj.Error:
            return
        self.stats = {"rx_packets": stat.rtcp.rxStat.pkt, "rx_bytes": stat.rtcp.rxStat.bytes,
                      "tx_packets": stat.rtcp.txStat.pkt, "tx_bytes": stat.rtcp.txStat.bytes}


def main(argv: list[str]) -> int:
    edge_host, edge_port, user, password, domain, wav_out, seconds = argv
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.logConfig.level = 1
    config.logConfig.consoleLevel = 1
    config.medConfig.noVad = True
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port = 0
    transport.boundAddress = "127.0.0.1"
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{user}@{domain}"
    account_config.regConfig.registrarUri = f"sip:{domain}"
    account_config.regConfig.timeoutSec = 600
    account_config.sipConfig.proxies.append(f"sip:{edge_host}:{edge_port};lr")
    account_config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    # pjsua2 starts every process at RTP port 4000: two phones running side by side (xdist)
    # then share 4000-4003 one after the other, and pjmedia follows RTP arriving from a new
    # address (NAT latching), so one phone can end up sending its digits to the other's twin.
    account_config.mediaConfig.transportConfig.port = random.randrange(20000, 60000, 2)
    account_config.mediaConfig.transportConfig.portRange = 100
    if os.environ.get("PJSUA2_PHONE_SRTP") == "mandatory":  # a plain offer is then refused
        account_config.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        account_config.mediaConfig.srtpSecureSignaling = 0
    phone = Phone(endpoint, wav_out)
    phone.create(account_config)
    deadline = time.monotonic() + float(seconds)
    answered: Call | None = None
    try:
        while time.monotonic() < deadline:
            endpoint.libHandleEvents(20)
            if answered is None and phone.calls:
                answered = phone.calls[0]
            if answered is not None:
                answered.sample()
                if answered.disconnected:
                    break
    finally:
        report = {"registered": phone.registered, "calls": len(phone.calls),
                  "stats": answered.stats if answered is not None else {}}
        for call in phone.calls:
            call.recorder = None  # closing the recorder completes the WAV file
            call.tone = None
        print(json.dumps(report), flush=True)
        # A pj.Call whose call has ended aborts in its destructor (pjsua_call_set_user_data on
        # a stale id), so the calls are left to the process exit: end the library first.
        phone.shutdown()
        endpoint.libDestroy()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
