"""A real softphone (baresip) calls a domain whose TwiML says something, and hears it."""

from __future__ import annotations

import os
import shutil
import wave
from array import array

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD
from tests.support.baresip import baresip_config, write_silence


async def test_baresip_call_to_say_is_answered_and_receives_rtp(harness, tmp_path):
    baresip = shutil.which("baresip")
    if baresip is None:
        pytest.fail("baresip is not installed: run scripts/bootstrap")
    from tests.peers.test_sipsak_baresip_digest import free_port
    from tests.support.peers import run

    await harness.provision(DomainPlan(
        "acme", credentials=[("alice", PASSWORD)],
        voice_url="twiml:<Response><Say>This is the twin speaking to baresip.</Say>"
                  "<Pause length=\"1\"/></Response>"))
    host, port = harness.node_port("us1")
    write_silence(tmp_path / "silence.wav", seconds=8)
    (tmp_path / "dump").mkdir()
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(baresip_config(
        sip_port=free_port(), wav=tmp_path / "silence.wav", rtp_low=rtp,
        dump=tmp_path / "dump"))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@acme.sip.twilio.com>;auth_user=alice;auth_pass={PASSWORD};regint=0;"
        f"outbound=\"sip:{host}:{port}\"\n")
    code, out = await run(baresip, "-f", str(tmp_path), "-e", "/dial sip:1000@acme.sip.twilio.com",
                          "-t", "8", timeout=40, env={**os.environ, "HOME": str(tmp_path)})
    # baresip's own call (a slow machine may leave other records after it)
    call = next((c for c in reversed(harness.twin.calls.all()) if c.username == "alice"), None)
    assert call is not None, out[-3000:]
    assert call.final_status == 200 and call.status == "completed", out[-3000:]
    assert call.media["packets_sent"] >= 100  # ~2.5 s of speech-length tone at 50 packets/s
    assert call.media["packets_received"] > 0  # baresip's own audio reached the twin
    region_address = harness.twin.nodes["us1"].region.address
    assert f"incoming rtp for 'audio' established, receiving from {region_address}" in out
    dumps = [p for p in (tmp_path / "dump").iterdir() if p.name.endswith("-dec.wav")]
    assert dumps, out[-3000:]
    with wave.open(str(dumps[0])) as decoded:
        samples = array("h", decoded.readframes(decoded.getnframes()))
    # baresip decoded what it received: count 20 ms frames carrying the tone, not silence.
    audible = sum(1 for i in range(0, len(samples) - 159, 160)
                  if max(abs(s) for s in samples[i:i + 160]) > 1000)
    assert audible >= 100, (audible, call.media)
    assert call.ended_at is not None and "terminated" in out
