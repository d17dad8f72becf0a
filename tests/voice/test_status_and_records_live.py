"""Status callbacks of each fidelity profile, and call records with alerts through the SDK."""

from __future__ import annotations

import asyncio

from siptwin.harness.provision import DomainPlan

BASE = {"AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "Caller", "Direction",
        "From", "SipCallId", "SipDomain", "SipDomainSid", "SipSourceIp", "To"}
PROGRESS = {"Timestamp", "CallbackSource", "SequenceNumber"}


async def _provision(harness, app, document: str, method: str = "POST"):
    voice = app.twiml("/voice", document)
    plan = DomainPlan("acme", voice_url=voice, voice_status_callback_url=app.url("/status"),
                      acl=["127.0.0.1"])
    provisioned = await harness.provision(plan)
    if method != "POST":
        client = harness.client()
        await asyncio.to_thread(
            client.api.v2010.account.sip.domains(provisioned.domain_sid).update,
            voice_status_callback_method=method)
    return provisioned


async def test_seed_profile_reports_four_events_in_sequence(harness, app):
    await _provision(harness, app, "<Response><Pause length=\"1\"/></Response>")
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=[("X-Id", "7")],
                                hold=10)
    hits = await app.wait("/status", 4)
    assert [h.values["CallStatus"] for h in hits] == ["initiated", "ringing", "in-progress",
                                                      "completed"]
    assert [h.values["SequenceNumber"] for h in hits] == ["0", "1", "2", "3"]
    for hit in hits:
        assert hit.signature_valid and hit.values["CallbackSource"] == "call-progress-events"
        assert set(hit.values) - {"CallDuration"} == BASE | PROGRESS | {"SipHeader_X-Id"}
        assert hit.values["Timestamp"].endswith("+0000")
    completed = hits[-1].values
    assert completed["CallDuration"] == "1"
    assert completed["CallSid"] == harness.twin.calls.get(result.call_id).sid
    assert "CallDuration" not in hits[0].values


async def test_observed_profile_reports_only_completed(harness, app):
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"profile": "observed"}))
    await _provision(harness, app, '<Response><Reject reason="busy"/></Response>', method="GET")
    await harness.call("us1", "sip:1@acme.sip.twilio.com")
    (hit,) = await app.wait("/status")
    await asyncio.sleep(0.2)
    assert len(app.of("/status")) == 1
    assert hit.method == "GET" and hit.signature_valid
    assert hit.values["CallStatus"] == "busy" and hit.values["SequenceNumber"] == "0"
    assert hit.values["CallDuration"] == "0"


async def test_failing_status_callback_is_warning_15003(harness, app):
    app.twiml("/status", "nope", status=500)
    await _provision(harness, app, "<Response><Reject/></Response>")
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    await app.wait("/status", 3)
    await asyncio.sleep(0.2)
    alerts = harness.twin.calls.get(result.call_id).alerts
    assert [a.code for a in alerts] == [15003, 15003, 15003]
    assert "HTTP 500" in alerts[-1].detail and "no-answer" in alerts[-1].detail


async def test_rest_api_lists_calls_and_their_notifications(harness, app):
    voice = app.twiml("/voice", "oops", status=500)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    await harness.provision(DomainPlan("euro", region="ie1", acl=["127.0.0.1"],
                                       voice_url="twiml:<Response><Hangup/></Response>"))
    failed = await harness.call("us1", "sip:1@acme.sip.twilio.com", from_uri="sip:al@127.0.0.1")
    ok = await harness.call("ie1", "sip:2@euro.sip.dublin.twilio.com", hold=5)
    client = harness.client()
    calls = await asyncio.to_thread(client.calls.list)
    failed_sid = harness.twin.calls.get(failed.call_id).sid
    assert [c.sid for c in calls] == [failed_sid]  # the ie1 call is listed by the ie1 API
    record = await asyncio.to_thread(client.calls(failed_sid).fetch)
    assert record.status == "failed" and record.direction == "inbound"
    assert record._from == "sip:al@127.0.0.1" and record.to == "sip:1@acme.sip.twilio.com"
    assert record.start_time is not None and record.end_time is not None
    notes = await asyncio.to_thread(client.calls(failed_sid).notifications.list)
    assert [(n.error_code, n.log) for n in notes] == [("11200", "0")]
    assert "HTTP 500" in notes[0].message_text
    assert notes[0].more_info == "https://www.twilio.com/docs/errors/11200"
    euro = harness.client("ie1")
    (dublin,) = await asyncio.to_thread(euro.calls.list)
    assert dublin.sid == harness.twin.calls.get(ok.call_id).sid
    assert dublin.status == "completed" and dublin.duration == "0"
    busy = await asyncio.to_thread(client.calls.list, status="busy")
    assert busy == []
