"""Issue 19, SIP side: each test is named after the spec line it pins and fails on the twin
as it was before (digest algorithm, 32106, unknown-domain code, Allow, 32105, 32013, 32008,
32103)."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.pipeline import loopback_contact
from siptwin.sip.digest import answer_challenge, parse_challenge
from siptwin.sip.message import parse_datagram
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD
from tests.support.rawsip import RawUac, statuses
from tests.support.registration import register

pytestmark = pytest.mark.asyncio

URI = "sip:+14155550100@acme.sip.us1.twilio.com"
BOB_PASSWORD = "Lighthouse8Keeper"


def _code(response) -> str:
    return (response.headers.get("X-Twilio-Error") or "").split(" ", 1)[0]


def _settings(harness, **overrides) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides(overrides))


# --- spec §4.3: "No algorithm parameter → MD5" -------------------------------------------

async def test_spec_4_3_an_answer_with_an_algorithm_never_challenged_is_refused(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.invite(leg)
        got = await uac.transact(invite, node)
        assert statuses(got) == [100, 407]
        uac.ack_failure(invite, got[-1], node)
        offered = got[-1].headers.get("Proxy-Authenticate")
        assert "algorithm" not in offered.lower()  # Twilio's challenge: MD5 by default
        sha256 = parse_challenge(offered + ", algorithm=SHA-256")
        cred = answer_challenge(sha256, "INVITE", URI, "alice", PASSWORD)
        assert cred.algorithm == "SHA-256"
        retry = uac.invite(leg, headers=[("Proxy-Authorization", cred.to_header())])
        got = await uac.transact(retry, node)
        assert statuses(got) == [100, 403] and _code(got[-1]) == "32202"
    call = harness.twin.calls.get(retry.call_id)
    assert any("SHA-256" in note for note in call.notes)


# --- spec §4.2 step 7: "Authorization username differs from the credential username → 32106"

@pytest.fixture
async def two_users(harness):
    await harness.provision(DomainPlan(
        "acme", sip_registration=True,
        registration_credentials=[("alice", PASSWORD), ("bob", BOB_PASSWORD)]))
    return harness.twin.registrar


async def test_spec_4_2_register_for_bob_with_alices_credentials_is_32106(harness, two_users):
    bob = await _register_as(harness, "bob", Auth("alice", PASSWORD))
    assert [r.status for r in bob] == [407, 403] and _code(bob[-1]) == "32106"
    assert two_users.bindings("sip:bob@acme.sip.twilio.com") == []
    own = await _register_as(harness, "bob", Auth("bob", BOB_PASSWORD))
    assert [r.status for r in own] == [407, 200]
    assert len(two_users.bindings("sip:bob@acme.sip.twilio.com")) == 1


async def test_authorization_name_match_off_accepts_any_valid_user(harness, two_users):
    _settings(harness, authorization_name_match="off")
    got = await _register_as(harness, "bob", Auth("alice", PASSWORD))
    assert [r.status for r in got] == [407, 200]


async def test_authorization_name_match_always_compares_the_invite_from_user(harness):
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    as_alice = await harness.call("us1", URI, auth=Auth("alice", PASSWORD),
                                  from_uri="sip:mallory@127.0.0.1")
    assert as_alice.statuses[-1] == 200  # by default an INVITE's From is not compared
    _settings(harness, authorization_name_match="always")
    got = await harness.call("us1", URI, auth=Auth("alice", PASSWORD),
                             from_uri="sip:mallory@127.0.0.1")
    assert got.statuses[-1] == 403 and _code(got.final) == "32106"
    ok = await harness.call("us1", URI, auth=Auth("alice", PASSWORD), from_uri="sip:alice@127.0.0.1")
    assert ok.statuses[-1] == 200


async def _register_as(harness, user: str, auth: Auth):
    host, port = harness.node_port("us1")
    async with SipClient() as client:
        return await client.request(
            "REGISTER", host, port, "sip:acme.sip.us1.twilio.com",
            to_uri=f"sip:{user}@acme.sip.us1.twilio.com",
            headers=[("Contact", f"<sip:{user}@127.0.0.1:5071>"), ("Expires", "3600")], auth=auth)


# --- spec §4.2 step 3: unknown domain, "no account-visible log" --------------------------

async def test_spec_4_2_unknown_domain_is_404_without_a_twilio_error(harness) -> None:
    got = await harness.call("us1", "sip:1@nobody.sip.us1.twilio.com")
    assert got.statuses[-1] == 404
    assert got.header("X-Twilio-Error") is None
    assert harness.twin.calls.get(got.call_id).alerts == ()


# --- spec §4.8: Twilio's Allow list is ACK,BYE,CANCEL,INVITE,OPTIONS,REFER,NOTIFY [OBS] -----

async def test_spec_4_8_options_allow_lists_twilios_observed_methods(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    host, port = harness.node_port("us1")
    async with SipClient() as client:
        got = await client.request("OPTIONS", host, port, URI)
    allow = [m.strip() for m in got[-1].headers.get("Allow").split(",")]
    assert got[-1].status == 200
    assert allow == ["ACK", "BYE", "CANCEL", "INVITE", "OPTIONS", "REFER", "NOTIFY"]
    _settings(harness, allow_methods=["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"])
    async with SipClient() as client:
        got = await client.request("OPTIONS", host, port, URI)
    assert got[-1].headers.get("Allow") == "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"


# --- spec §4.2 other gates: "Contact header pointing at 127.0.0.1/localhost → 32105" ------

async def test_spec_4_2_loopback_contact_is_32105_when_refused(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    assert (await harness.call("us1", URI)).statuses[-1] == 200  # default: a loopback caller
    _settings(harness, loopback_contact="refuse")
    got = await harness.call("us1", URI)
    assert got.statuses[-1] == 482 and _code(got.final) == "32105"


async def test_loopback_contact_from_an_outside_caller_is_refused_by_default() -> None:
    invite = parse_datagram(
        b"INVITE sip:1@acme.sip.twilio.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\n"
        b"From: <sip:a@10.0.0.5>;tag=1\r\nTo: <sip:1@acme.sip.twilio.com>\r\nCall-ID: c\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sip:a@localhost:5060>\r\nContent-Length: 0\r\n\r\n")
    assert loopback_contact(invite, "10.0.0.5", "outside-callers") == "localhost"
    assert loopback_contact(invite, "127.0.0.1", "outside-callers") is None
    assert loopback_contact(invite, "127.0.0.1", "refuse") == "localhost"
    assert loopback_contact(invite, "10.0.0.5", "accept") is None


# --- spec §4.2 other gates: "CPS exceeded on the parent account → 32013" -------------------

async def test_spec_4_2_calls_past_the_account_cps_limit_are_32013(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    _settings(harness, account_cps_limit=0.2)  # one call, then one every five seconds
    first = await harness.call("us1", URI)
    second = await harness.call("us1", URI)
    assert first.statuses[-1] == 200
    assert second.statuses[-1] == 503 and _code(second.final) == "32013"


# --- spec §4.8: "registration rate exceeded → 32008" ---------------------------------------

async def test_spec_4_8_registers_past_the_rate_limit_are_32008(harness, two_users) -> None:
    _settings(harness, registration_rate_limit=0.2)  # the 407 round uses the only token
    got = await register(harness)
    assert [r.status for r in got] == [407, 503] and _code(got[-1]) == "32008"


# --- spec §4.2 step 8: "missing body where required → 32103" -------------------------------

async def test_spec_4_2_an_invite_declaring_sdp_without_a_body_is_32103(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.invite(leg, offer=False, headers=[("Content-Type", "application/sdp")])
        got = await uac.transact(invite, node)
        uac.ack_failure(invite, got[-1], node)
    assert statuses(got)[-1] == 488 and _code(got[-1]) == "32103"
    late = await harness.call("us1", URI, sdp=None)  # no Content-Type: a late offer, fine
    assert late.statuses[-1] == 200
