"""The voice webhook as Twilio sends it, checked by a real application with the official SDK."""

from __future__ import annotations

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD

SAY = "<Response><Say>Hello</Say></Response>"
BASE_NAMES = {"AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "Caller",
              "Direction", "From", "SipCallId", "SipDomain", "SipDomainSid", "SipSourceIp", "To"}


async def test_webhook_carries_exactly_the_sip_parameters_and_a_valid_signature(harness, app):
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    provisioned = await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call(
        "ie1", "sip:1001@acme.sip.dublin.twilio.com;transport=udp",
        from_uri="sip:alice@127.0.0.1",
        headers=[("X-Route-Id", "a=1;b=2;c=3"), ("x-lower", "kept"),
                 ("User-to-User", "123456789;encoding=hex"), ("P-Asserted-Identity", "<sip:x@y>"),
                 ("Subject", "not passed")])
    hit = (await app.wait("/voice"))[0]
    assert hit.signature_valid
    params = hit.values
    assert set(params) == BASE_NAMES | {"SipHeader_X-Route-Id", "SipHeader_x-lower",
                                        "SipHeader_User-to-User"}
    assert params["SipHeader_X-Route-Id"] == "a=1;b=2;c=3"
    assert params["SipHeader_User-to-User"] == "123456789;encoding=hex"
    call = harness.twin.calls.get(result.call_id)
    assert params["CallSid"] == call.sid and params["CallStatus"] == "ringing"
    assert params["AccountSid"] == harness.twin.account_sid and params["ApiVersion"] == "2010-04-01"
    assert params["Direction"] == "inbound"
    assert params["From"] == params["Caller"] == "sip:alice@127.0.0.1"
    assert params["To"] == params["Called"] == "sip:1001@acme.sip.dublin.twilio.com"
    assert params["SipDomain"] == "acme.sip.twilio.com"
    assert params["SipDomainSid"] == provisioned.domain_sid
    assert params["SipCallId"] == result.call_id and params["SipSourceIp"] == "127.0.0.1"
    assert hit.headers["User-Agent"] == "TwilioProxy/1.1"
    assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert len(hit.headers["I-Twilio-Idempotency-Token"]) >= 32


async def test_sip_username_is_sent_only_after_digest(harness, app):
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, credentials=[("alice", PASSWORD)]))
    await harness.provision(DomainPlan("open", voice_url=voice, acl=["127.0.0.0/24"]))
    await harness.call("us1", "sip:1@acme.sip.twilio.com", auth=Auth("alice", PASSWORD))
    await harness.call("us1", "sip:1@open.sip.twilio.com")
    with_digest, without = await app.wait("/voice", 2)
    assert with_digest.values["SipUsername"] == "alice" and with_digest.signature_valid
    assert "SipUsername" not in without.values and without.signature_valid


async def test_get_method_puts_parameters_in_the_signed_query(harness, app):
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice + "?tenant=blue",
                                       voice_method="GET", acl=["127.0.0.1"]))
    await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=[("X-Tag", "v w")])
    hit = (await app.wait("/voice"))[0]
    assert hit.method == "GET" and hit.signature_valid
    assert hit.values["tenant"] == "blue" and hit.values["SipHeader_X-Tag"] == "v w"
    assert "Content-Type" not in hit.headers


async def test_repeated_x_header_follows_the_fidelity_setting(harness, app):
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    headers = [("X-Dup", "one"), ("X-Dup", "two")]
    await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=headers)
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"repeated_x_header": "join"}))
    await harness.call("us1", "sip:1@acme.sip.twilio.com", headers=headers)
    first, joined = await app.wait("/voice", 2)
    assert first.values["SipHeader_X-Dup"] == "one"
    assert joined.values["SipHeader_X-Dup"] == "one,two" and joined.signature_valid


async def test_connection_override_fragment_is_honoured_and_never_sent(harness, app):
    slow = app.twiml("/slow", SAY, delay=2.0)
    fallback = app.twiml("/fallback", "<Response><Hangup/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=slow + "#tt=300&rc=0",
                                       voice_fallback_url=fallback, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses[-1] == 200  # the fallback's <Hangup/> answers, then BYE
    (hit,) = await app.wait("/slow")
    assert "#" not in hit.url and "tt=" not in hit.url and hit.signature_valid
    (fallback_hit,) = await app.wait("/fallback")
    assert fallback_hit.values["ErrorCode"] == "11205"
    assert fallback_hit.values["ErrorUrl"] == slow
    call = harness.twin.calls.get(result.call_id)
    assert call.webhooks[0]["elapsed"] < 1.5


async def test_spec_5_3_webhooks_are_signed_with_the_processing_regions_token(harness, app):
    """Each region has its own auth token (spec 2.1); the webhook is signed with the token of
    the region that processes the call, whichever edge the INVITE reached (spec 6.3)."""
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    status = app.url("/status")
    await harness.provision(DomainPlan("euro", region="ie1", voice_url=voice, acl=["127.0.0.1"],
                                       voice_status_callback_url=status))
    await harness.provision(DomainPlan("home", voice_url=voice, acl=["127.0.0.1"]))
    await harness.call("us1", "sip:1@euro.sip.twilio.com")  # the ashburn edge, ie1 processing
    dublin = (await app.wait("/voice"))[0]
    assert dublin.values["SipDomain"] == "euro.sip.twilio.com"
    assert dublin.signed_by == "ie1" and not dublin.signature_valid
    callback = (await app.wait("/status"))[0]
    assert callback.signed_by == "ie1"
    await harness.call("ie1", "sip:1@home.sip.dublin.twilio.com")  # the dublin edge, us1
    home = (await app.wait("/voice", 2))[1]
    assert home.values["SipDomain"] == "home.sip.twilio.com"
    assert home.signed_by == "us1" and home.signature_valid
