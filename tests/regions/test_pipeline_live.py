"""The inbound pipeline over real sockets, provisioned through the official twilio SDK."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD

pytestmark = pytest.mark.asyncio


async def test_credentials_challenge_then_answer(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("ie1", "sip:+14155550100@acme.sip.ie1.twilio.com",
                                auth=Auth("alice", PASSWORD))
    assert result.statuses == [100, 407, 100, 180, 200]
    challenge = result.responses[1].headers.get("Proxy-Authenticate")
    assert 'realm="sip.twilio.com"' in challenge and 'qop="auth"' in challenge
    assert "nonce=" in challenge and "opaque=" in challenge
    assert result.bye_status == 200
    call = harness.twin.calls.get(result.call_id)
    assert call.sid.startswith("CA") and call.region == "ie1" and call.username == "alice"
    assert call.status == "completed" and call.edge_label == "ie1"


async def test_wrong_password_is_403_with_32202(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("us1", "sip:1000@acme.sip.twilio.com",
                                auth=Auth("alice", "Wr0ngPassword9"))
    assert result.statuses == [100, 407, 100, 403]
    assert result.header("X-Twilio-Error").startswith("32202")


async def test_unlisted_address_hears_nothing_in_seed_profile(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.10"]))
    result = await harness.call("de1", "sip:1000@acme.sip.frankfurt.twilio.com",
                                source="127.0.0.11", wait_final=1.5)
    assert result.timed_out and result.responses == []
    call = harness.twin.calls.get(result.call_id)
    assert call.status == "dropped" and call.decided_by == "source_ip_in_acl"
    # Nothing is kept for a dropped INVITE (or its retransmissions): a flood cannot grow memory.
    assert len(harness.twin.nodes["de1"].layer) == 0


async def test_unlisted_address_gets_403_32201_in_observed_profile(harness) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"profile": "observed"}))
    await harness.provision(DomainPlan("acme", acl=["127.0.0.10"]))
    result = await harness.call("de1", "sip:1000@acme.sip.de1.twilio.com", source="127.0.0.11")
    assert result.statuses == [100, 403]
    assert result.header("X-Twilio-Error").startswith("32201")


async def test_listed_address_is_answered_acl_by_cidr(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/28"]))
    result = await harness.call("sg1", "sip:1000@acme.sip.singapore-ix.twilio.com",
                                source="127.0.0.9")
    assert result.statuses == [100, 180, 200] and result.established


async def test_acl_and_credentials_are_both_enforced(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.10"],
                                       credentials=[("alice", PASSWORD)]))
    ok = await harness.call("au1", "sip:1@acme.sip.au1.twilio.com", source="127.0.0.10",
                            auth=Auth("alice", PASSWORD))
    assert ok.statuses == [100, 407, 100, 180, 200]
    blocked = await harness.call("au1", "sip:1@acme.sip.au1.twilio.com", source="127.0.0.12",
                                 auth=Auth("alice", PASSWORD), wait_final=1.0)
    assert blocked.responses == []


async def test_unknown_domain_is_404(harness) -> None:
    result = await harness.call("us2", "sip:1000@nobody.sip.us2.twilio.com")
    assert result.statuses == [404]


async def test_no_authentication_mapped_is_403(harness) -> None:
    await harness.provision(DomainPlan("open"))
    result = await harness.call("us1", "sip:1000@open.sip.twilio.com")
    assert result.statuses == [403]


async def test_max_forwards_zero_is_483_32006(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1000@acme.sip.twilio.com", max_forwards=0)
    assert result.statuses == [483] and result.header("X-Twilio-Error").startswith("32006")


async def test_secure_domain_refuses_udp_with_32209(harness) -> None:
    await harness.provision(DomainPlan("vault", secure=True, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1000@vault.sip.twilio.com")
    assert result.statuses == [403] and result.header("X-Twilio-Error").startswith("32209")


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_stream_transports_complete_an_authenticated_call(harness, transport) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("jp1", "sip:1000@acme.sip.tokyo.twilio.com", transport=transport,
                                auth=Auth("alice", PASSWORD))
    assert result.statuses[-2:] == [180, 200] and result.bye_status == 200


async def test_api_change_takes_effect_on_next_invite(harness) -> None:
    provisioned = await harness.provision(DomainPlan("acme", acl=["127.0.0.10"]))
    first = await harness.call("br1", "sip:1@acme.sip.br1.twilio.com", source="127.0.0.20",
                               wait_final=1.0)
    assert first.responses == []
    client = harness.client()
    sip = client.api.v2010.account.sip

    def add_entry() -> None:
        sip.ip_access_control_lists(provisioned.acl_sid).ip_addresses.create(
            friendly_name="new", ip_address="127.0.0.20")

    import asyncio

    await asyncio.to_thread(add_entry)
    second = await harness.call("br1", "sip:1@acme.sip.br1.twilio.com", source="127.0.0.20")
    assert second.statuses == [100, 180, 200]


async def test_each_node_answers_only_on_its_own_address(harness) -> None:
    ie1 = harness.twin.nodes["ie1"].endpoint.udp_address
    us1 = harness.twin.nodes["us1"].endpoint.udp_address
    assert ie1[0] != us1[0]
    assert {n.endpoint.udp_address[0] for n in harness.twin.nodes.values()} == {
        r.address for r in harness.twin.catalogue}


async def test_options_is_answered_with_allow(harness) -> None:
    from siptwin.ua.client import SipClient

    host, port = harness.node_port("us1")
    async with SipClient() as client:
        responses = await client.request("OPTIONS", host, port, f"sip:{host}")
    assert responses[-1].status == 200 and "INVITE" in responses[-1].headers.get("Allow")


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_sips_request_uri_is_refused_on_every_transport(harness, transport) -> None:
    """Twilio documents that sips: is not supported (spec §4.1): refused, never answered."""
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    result = await harness.call("us1", "sips:1000@acme.sip.twilio.com", transport=transport)
    assert result.statuses == [416] and not result.established
    assert result.header("X-Twilio-Error").startswith("32110")
    call = harness.twin.calls.get(result.call_id)
    assert call.decided_by == "sip_scheme_only" and call.status != "completed"


async def test_sips_top_record_route_is_refused(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1000@acme.sip.twilio.com", transport="tls",
                                headers=[("Record-Route", "<sips:proxy.example.com;lr>")])
    assert result.statuses == [416]


async def test_tls_answer_contact_is_a_sip_uri_for_tls(harness) -> None:
    """With a sip: Request-URI the 200's Contact is sip:…;transport=tls (RFC 3261 §12.1.1 only
    demands sips: for a SIPS request, which is refused before an answer)."""
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1000@acme.sip.twilio.com;transport=tls",
                                transport="tls")
    assert result.statuses[-1] == 200
    contact = result.final.headers.get("Contact")
    assert contact.startswith("<sip:") and contact.endswith(";transport=tls>")
    assert f":{harness.node_port('us1', 'tls')[1]};" in contact
