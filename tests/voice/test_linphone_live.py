"""Interop: linphonec 5 calls a secure domain over TLS with mandatory SDES-SRTP, puts the call
on hold and resumes it, then presses a key that <Gather> must take. Its audio is files
(``soundcard use files``): it sends a 440 Hz file and records what it hears, which must be
the twin's two ``<Play>`` tones."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD, free_port
from tests.support.audio import read_wav, tones_heard, write_tone

PHONE_HZ, FIRST_HZ, SECOND_HZ = 440.0, 700.0, 1500.0

LINPHONERC = """\
[sip]
sip_port=0
sip_tcp_port=0
sip_tls_port={sip_port}
use_ipv6=0
bind_address=127.0.0.1
verify_server_certs=0
verify_server_cn=0
media_encryption=srtp
media_encryption_mandatory=1
auto_net_state_mon=0
default_proxy=0
[net]
auto_net_state_mon=0
[rtp]
audio_rtp_port={rtp_port}
[sound]
echocancellation=0
[auth_info_0]
username=alice
passwd={password}
realm=sip.twilio.com
domain=vault.sip.twilio.com
[proxy_0]
reg_proxy=<sip:{host}:{port};transport=tls>
reg_route=<sip:{host}:{port};transport=tls;lr>
reg_identity=sip:alice@vault.sip.twilio.com
reg_sendregister=0
publish=0
"""


async def _call_reached(harness, username: str, moment: str, timeout: float) -> None:
    """Wait until a call of ``username`` has its ``moment`` (answered_at, ended_at) set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if any(c.username == username and getattr(c, moment) is not None
               for c in harness.twin.calls.all()):
            return
        await asyncio.sleep(0.1)


async def test_linphone_srtp_over_tls_survives_hold_and_resume(harness, app, tmp_path):
    linphonec = shutil.which("linphonec")
    if linphonec is None:
        pytest.fail("linphonec is not installed: run scripts/bootstrap (linphone-cli)")

    first, second, mine = tmp_path / "first.wav", tmp_path / "second.wav", tmp_path / "mine.wav"
    write_tone(first, FIRST_HZ, 2.0)
    write_tone(second, SECOND_HZ, 1.5)
    write_tone(mine, PHONE_HZ, 20.0)
    heard = tmp_path / "heard.wav"
    app.twiml("/digits", f"<Response><Play>{second.as_uri()}</Play><Hangup/></Response>")
    voice = app.twiml("/voice", f'<Response><Play>{first.as_uri()}</Play>'
                      '<Gather action="/digits" numDigits="1" timeout="20">'
                      '<Pause length="20"/></Gather></Response>')
    await harness.provision(DomainPlan("vault", credentials=[("alice", PASSWORD)], secure=True,
                                       voice_url=voice))
    host, port = harness.node_port("us1", "tls")
    (tmp_path / ".local" / "share" / "linphone").mkdir(parents=True)
    (tmp_path / "linphonerc").write_text(LINPHONERC.format(
        sip_port=free_port(), rtp_port=free_port() & ~1, password=PASSWORD, host=host,
        port=port))
    proc = await asyncio.create_subprocess_exec(
        linphonec, "-c", str(tmp_path / "linphonerc"), "-d", "1", "-l", str(tmp_path / "log"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.stdin is not None and proc.stdout is not None
    output: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.ensure_future(read())

    async def command(text: str, wait: float) -> None:
        assert proc.stdin is not None
        proc.stdin.write(text.encode() + b"\n")
        await proc.stdin.drain()
        await asyncio.sleep(wait)

    try:
        await asyncio.sleep(1.5)
        await command("soundcard use files", 0.2)
        await command(f"play {mine}", 0.2)
        await command(f"record {heard}", 0.2)
        await command("call sip:1000@vault.sip.twilio.com", 0)
        # Hold only once the call is up (linphonec ignores "pause" before it): on a loaded
        # machine its TLS and SRTP set-up once took longer than the fixed 4 s waited here.
        await _call_reached(harness, "alice", "answered_at", timeout=20)
        # Let some 3 s of linphonec's file reach the twin before the hold: the packet count
        # below needs ~6 s in all, and 2 s here left too little margin under full-suite load.
        await asyncio.sleep(3.0)
        await command("pause", 2.0)
        await command("resume", 2.5)
        await command("5", 0)
        # The twin plays the second tone (1.5 s) once the /digits webhook answers, then hangs
        # up: wait for that end, not a fixed time (under load the tone was once cut short).
        await _call_reached(harness, "alice", "ended_at", timeout=20)
        await command("terminate", 1.0)
        await command("quit", 1.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        reader.cancel()
    text = "".join(output)
    calls = [c for c in harness.twin.calls.all() if c.username == "alice"]
    assert calls, text[-3000:]
    call = calls[-1]
    assert call.final_status == 200 and call.transport == "tls", (call.status, text[-3000:])
    (hit,) = await app.wait("/digits", timeout=5)
    assert hit.values["Digits"] == "5", (call.media, text[-3000:])
    # Every RTP packet authenticated under linphonec's key (its repeated RFC 4733 end packets
    # are dropped by the replay check, not counted as rejected).
    assert call.media["srtp"]["rejected"] == 0
    assert call.media["srtp"]["suite"] == "AES_CM_128_HMAC_SHA1_80"
    invites = [e for e in call.trace if e.direction == "in" and e.data.startswith(b"INVITE")]
    held = [e for e in invites if b"a=sendonly" in e.data]
    assert held and len(invites) >= 3, [e.data[:200] for e in invites]  # hold, then resume
    answers = [e.data for e in call.trace
               if e.direction == "out" and e.data.startswith(b"SIP/2.0 200") and b"m=audio" in e.data]
    assert any(b"a=recvonly" in a for a in answers) and b"a=sendrecv" in answers[-1]
    # linphonec decrypted the twin's two tones (before the hold, after the digits), in order,
    # into its recording; the twin authenticated (decrypted) its 440 Hz file: at
    # least 6 s of it (300 packets of 20 ms) before the hold, after it and while the tone played.
    samples, rate = read_wav(heard)
    tones = tones_heard(samples, rate, (PHONE_HZ, FIRST_HZ, SECOND_HZ))
    assert tones.count(FIRST_HZ) >= 3 and tones.count(SECOND_HZ) >= 2, tones
    assert PHONE_HZ not in tones and tones.index(SECOND_HZ) > tones.index(FIRST_HZ), tones
    assert call.media["packets_received"] >= 300, call.media
