"""<Dial><Sip> reaches a real SIPp UAS from the region's own address, with the X- header."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import free_port

SCENARIO = Path(__file__).parent / "data" / "uas_x_header.xml"


async def test_dial_sip_reaches_sipp_with_headers_and_reports_to_the_action(harness, app, tmp_path):
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("sipp is not installed: run scripts/bootstrap")
    port = free_port()
    trace = tmp_path / "messages.log"
    uas = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
        "-timeout", "20s", "-nostdin", "-trace_msg", "-message_file", str(trace),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, cwd=tmp_path)
    await asyncio.sleep(0.3)  # SIPp binds its port
    app.twiml("/dialed", "<Response><Say>ignored after hang-up</Say></Response>")
    voice = app.twiml("/voice", f'<Response><Dial action="/dialed" timeout="5">'
                                f"<Sip>sip:bob@127.0.0.1:{port}?X-Tenant=blue&amp;"
                                f"User-to-User=abcd%3Bencoding%3Dhex</Sip></Dial></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("ie1", "sip:1@acme.sip.ie1.twilio.com", hold=1.5)
    out, _ = await asyncio.wait_for(uas.communicate(), 15)
    assert uas.returncode == 0, out.decode(errors="replace")[-2000:]
    assert result.statuses == [100, 180, 200]
    messages = trace.read_text(errors="replace")
    region_address = harness.twin.nodes["ie1"].region.address
    invite = messages.split("INVITE sip:bob@", 1)[1].split("\n\n", 1)[0]
    assert f"Via: SIP/2.0/UDP {region_address}:" in invite
    assert "X-Tenant: blue" in invite and "User-to-User: abcd;encoding=hex" in invite
    assert "X-Twilio-CallSid: CA" in invite
    (hit,) = await app.wait("/dialed", timeout=5)
    values = hit.values
    assert hit.signature_valid
    assert values["DialCallStatus"] == "completed" and values["DialSipResponseCode"] == "200"
    assert values["DialSipHeader_X-Callee"] == "pbx-7"
    assert values["DialSipHeader_X-Tenant-Seen"] == "blue"  # SIPp matched X-Tenant itself
    assert values["DialSipCallId"] and values["DialCallSid"].startswith("CA")
    assert values["CallStatus"] == "completed"
