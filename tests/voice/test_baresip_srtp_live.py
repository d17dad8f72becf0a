"""Interop: baresip (its own SRTP implementation, not libsrtp) calls a secure domain over TLS
with mandatory SDES-SRTP, and decodes what the twin says."""

from __future__ import annotations

import os
import shutil
import wave
from array import array

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD, free_port
from tests.support.baresip import baresip_config, write_silence
from tests.support.peers import run


async def test_baresip_calls_a_secure_domain_over_tls_with_srtp(harness, tmp_path):
    baresip = shutil.which("baresip")
    if baresip is None or not os.path.exists("/usr/lib/baresip/modules/srtp.so"):
        pytest.fail("baresip with its srtp module is not installed: run scripts/bootstrap")

    await harness.provision(DomainPlan(
        "vault", credentials=[("alice", PASSWORD)], secure=True,
        voice_url="twiml:<Response><Say>This is the twin speaking over SRTP.</Say>"
                  "<Pause length=\"1\"/></Response>"))
    host, port = harness.node_port("us1", "tls")
    write_silence(tmp_path / "silence.wav", seconds=8)
    (tmp_path / "dump").mkdir()
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(baresip_config(
        sip_port=free_port(), transport="tls", wav=tmp_path / "silence.wav", rtp_low=rtp,
        dump=tmp_path / "dump", cafile=harness.twin.certificate))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@vault.sip.twilio.com;transport=tls>;auth_user=alice;auth_pass={PASSWORD};"
        f"regint=0;mediaenc=srtp-mand;outbound=\"sip:{host}:{port};transport=tls\"\n")
    code, out = await run(baresip, "-f", str(tmp_path), "-e",
                          "/dial sip:1000@vault.sip.twilio.com;transport=tls",
                          "-t", "8", timeout=40, env={**os.environ, "HOME": str(tmp_path)})
    call = next((c for c in reversed(harness.twin.calls.all()) if c.username == "alice"), None)
    assert call is not None, out[-3000:]
    assert call.final_status == 200 and call.status == "completed", out[-3000:]
    assert call.transport == "tls", call.transport
    # baresip's SRTP reached the twin and authenticated; the twin's reached baresip.
    assert call.media["srtp"]["rejected"] == 0 and call.media["packets_received"] > 0, call.media
    assert call.media["packets_sent"] >= 100
    dumps = [p for p in (tmp_path / "dump").iterdir() if p.name.endswith("-dec.wav")]
    assert dumps, out[-3000:]
    with wave.open(str(dumps[0])) as decoded:
        samples = array("h", decoded.readframes(decoded.getnframes()))
    audible = sum(1 for i in range(0, len(samples) - 159, 160)
                  if max(abs(s) for s in samples[i:i + 160]) > 1000)
    assert audible >= 100, (audible, call.media, out[-2000:])
