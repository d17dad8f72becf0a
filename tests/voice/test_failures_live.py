"""When the application fails: fallback URL, the final outcome, and an alert for each failure."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import closed_port

HANGUP = "<Response><Hangup/></Response>"


def fast(harness) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides(
        {"webhook_total_timeout": 0.5, "webhook_connect_timeout": 0.4}))


async def _fallback_case(harness, app, voice_url: str) -> tuple[object, object]:
    fallback = app.twiml("/fallback", HANGUP)
    await harness.provision(DomainPlan("acme", voice_url=voice_url, voice_fallback_url=fallback,
                                       acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    (hit,) = await app.wait("/fallback")
    return result, hit


@pytest.mark.parametrize(("name", "respond", "code", "words"), [
    ("http-500", {"status": 500}, 11200, "returned HTTP 500"),
    ("timeout", {"delay": 2.0}, 11205, "did not complete within 0.5 s"),
    ("invalid-xml", {"document": "<Response><Say>unclosed</Response>"}, 12100, "not well-formed"),
    ("wrong-root", {"document": "<Reply><Say>x</Say></Reply>"}, 12100, "not <Response>"),
    ("no-content-type", {"content_type": None}, 12300, "without a Content-Type"),
    ("json-content-type", {"content_type": "application/json"}, 12300, "application/json"),
    ("too-large", {"document": "<Response>" + "<Pause/>" * 9000 + "</Response>"}, 11750, "64 kB"),
])
async def test_voice_url_failure_goes_to_fallback_and_leaves_an_alert(
        harness, app, name, respond, code, words):
    fast(harness)
    document = respond.pop("document", "<Response><Say>primary</Say></Response>")
    voice = app.twiml("/voice", document, **respond)
    result, hit = await _fallback_case(harness, app, voice)
    assert hit.signature_valid
    assert hit.values["ErrorCode"] == str(code) and hit.values["ErrorUrl"] == voice
    assert result.statuses == [100, 180, 200] and result.ended_by_remote  # fallback's Hangup
    call = harness.twin.calls.get(result.call_id)
    (alert,) = call.alerts
    assert alert.code == code and words in alert.detail and alert.message


async def test_unreachable_voice_url_goes_to_fallback(harness, app):
    fast(harness)
    dead = f"http://127.0.0.1:{closed_port()}/voice"
    result, hit = await _fallback_case(harness, app, dead)
    assert hit.values["ErrorCode"] == "11205"
    alert = harness.twin.calls.get(result.call_id).alerts[0]
    assert alert.code == 11205 and "cannot connect" in alert.detail


async def test_spec_4_4_both_failing_is_500_carrying_the_last_failure_code(harness, app):
    """The 500 names why no TwiML came: here the fallback's unparseable document (12100)."""
    fast(harness)
    voice = app.twiml("/voice", "oops", status=503)
    fallback = app.twiml("/fallback", "<Response>", content_type="text/xml")
    await harness.provision(DomainPlan("acme", voice_url=voice, voice_fallback_url=fallback,
                                       acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses == [100, 180, 500]
    assert result.header("X-Twilio-Error") == "12100 Document parse failure"
    call = harness.twin.calls.get(result.call_id)
    assert call.status == "failed"
    assert [a.code for a in call.alerts] == [11200, 12100]
    assert "HTTP 503" in call.alerts[0].detail and call.alerts[1].detail.startswith("fallback:")


async def test_spec_4_4_no_fallback_is_500_carrying_the_parse_failure_12100(harness, app):
    fast(harness)
    voice = app.twiml("/voice", "<Response><Bogus/>", status=200)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses == [100, 180, 500]
    assert result.header("X-Twilio-Error") == "12100 Document parse failure"
    alerts = harness.twin.calls.get(result.call_id).alerts
    assert [a.code for a in alerts] == [12100]  # one failure, one alert


async def test_spec_4_4_a_500_from_the_app_is_refused_with_11200(harness, app):
    fast(harness)
    voice = app.twiml("/voice", "boom", status=500)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses == [100, 180, 500]
    assert result.header("X-Twilio-Error") == "11200 HTTP retrieval failure"


async def test_answer_error_outcome_answers_then_hangs_up(harness, app):
    fast(harness)
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides(
        {"webhook_failure": "answer-error"}))
    voice = app.twiml("/voice", "", status=404)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", hold=10)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    assert harness.twin.calls.get(result.call_id).alerts[0].code == 11200


async def test_schema_warnings_are_alerts_and_execution_goes_on(harness, app):
    voice = app.twiml("/voice", '<Response><Foo/><Say colour="red">hi</Say>'
                                '<Reject reason="maybe"/></Response>')
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", hold=10)
    assert result.statuses == [100, 180, 200]  # Say answered; the late Reject hangs up
    alerts = harness.twin.calls.get(result.call_id).alerts
    assert [a.code for a in alerts] == [12200, 12200, 12200, 12200]
    assert "<Foo>" in alerts[0].detail and "colour" in alerts[1].detail
