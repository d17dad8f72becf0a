"""Issue 19, voice side: X- header limits (spec §4.6, §9), To normalisation (spec §5.2) and a
domain without voice_url (spec §3.1, §5.6), each named after the spec line it pins."""

from __future__ import annotations

from siptwin.diagnostics import explain
from siptwin.harness.provision import DomainPlan

HANGUP = "<Response><Hangup/></Response>"


def _settings(harness, **overrides) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides(overrides))


async def _domain(harness, app, **plan):
    voice = app.twiml("/voice", HANGUP)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"], **plan))


# --- spec §9: "Inbound X-header size limits: none enforced" --------------------------------

async def test_spec_9_forty_x_headers_of_100_characters_all_reach_the_webhook(harness, app):
    await _domain(harness, app)
    headers = [(f"X-H{n:02d}", "v" * 96) for n in range(40)]  # 100 characters each
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=headers)
    hit = (await app.wait("/voice"))[0]
    assert hit.signature_valid
    assert {k: v for k, v in hit.values.items() if k.startswith("SipHeader_")} == {
        f"SipHeader_{name}": value for name, value in headers}
    assert not any("x_header_total_cap" in note for note in harness.twin.calls.get(result.call_id).notes)


async def test_spec_9_one_header_of_3000_characters_reaches_the_webhook(harness, app):
    await _domain(harness, app)
    await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=[("X-Big", "b" * 3000)])
    hit = (await app.wait("/voice"))[0]
    assert hit.values["SipHeader_X-Big"] == "b" * 3000


async def test_a_set_cap_says_what_it_left_out(harness, app):
    await _domain(harness, app)
    _settings(harness, x_header_total_cap=300)
    headers = [(f"X-H{n}", "v" * 96) for n in range(5)]  # 100 characters each
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=headers)
    hit = (await app.wait("/voice"))[0]
    assert sorted(k for k in hit.values if k.startswith("SipHeader_")) == [
        "SipHeader_X-H0", "SipHeader_X-H1", "SipHeader_X-H2"]
    call = harness.twin.calls.get(result.call_id)
    assert [n for n in call.notes if "x_header_total_cap=300" in n] == [
        f"X- header X-H{n} not passed to the webhook: the total exceeds x_header_total_cap=300"
        for n in (3, 4)]
    finding = next(f for f in explain(harness.twin, result.call_id) if f.id == "x-header-dropped")
    assert any(line.startswith("X-H3 → dropped") for line in finding.details["dropped"])


# --- spec §5.2: To is "sip:<Request-URI user>@<host as received>", parameters removed ------

async def test_spec_5_2_to_normalisation_follows_the_to_parameter_setting(harness, app):
    await _domain(harness, app)
    uri = "sip:1001@acme.sip.us1.twilio.com;transport=udp"
    to_header = "sip:reception@acme.sip.twilio.com"

    async def called(**overrides) -> str:
        _settings(harness, **overrides)
        await harness.call("us1", uri, to_uri=to_header)
        return app.of("/voice")[-1].values["To"]

    assert await called() == "sip:1001@acme.sip.us1.twilio.com"
    assert await called(to_parameter="request-uri-verbatim") == uri
    assert await called(to_parameter="to-header") == to_header


# --- spec §3.1 / §5.6: a domain without voice_url -----------------------------------------

async def test_no_voice_url_goes_to_the_fallback_like_a_failed_fetch(harness, app):
    _settings(harness, no_voice_url="fallback")
    fallback = app.twiml("/fallback", "<Response><Reject reason=\"busy\"/></Response>")
    await harness.provision(DomainPlan("acme", voice_fallback_url=fallback, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses[-1] == 486
    hit = (await app.wait("/fallback"))[0]
    assert hit.values["ErrorCode"] == "11200" and hit.signature_valid


async def test_no_voice_url_and_no_fallback_is_refused_not_left_silent(harness, app):
    _settings(harness, no_voice_url="fallback")
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses == [100, 180, 500]
    assert result.header("X-Twilio-Error") == "11200 HTTP retrieval failure"
    call = harness.twin.calls.get(result.call_id)
    assert call.status == "failed" and "no voice_url" in call.alerts[0].detail
