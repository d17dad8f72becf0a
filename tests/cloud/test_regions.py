"""Processing-region isolation and the routes API (inbound processing region)."""

from __future__ import annotations

from siptwin.cloud.view import ControlPlaneView

from .conftest import Twin, TwinFactory, expect_error


def test_resources_created_in_one_region_are_invisible_in_another(twin: Twin) -> None:
    dublin = twin.client(region="ie1")
    default = twin.client()
    sydney = twin.client(host_header="api.sydney.au1.twilio.com")
    domain = dublin.sip.domains.create(domain_name="eu.sip.twilio.com")
    acl = dublin.sip.ip_access_control_lists.create(friendly_name="office")
    credential_list = dublin.sip.credential_lists.create(friendly_name="staff")

    assert [d.sid for d in dublin.sip.domains.list()] == [domain.sid]
    for other in (default, sydney):
        assert other.sip.domains.list() == []
        assert other.sip.ip_access_control_lists.list() == []
        assert other.sip.credential_lists.list() == []
        expect_error(lambda other=other: other.sip.domains(domain.sid).fetch(), 404, 20404)
    # The same list name is free in another region: friendly-name uniqueness is regional.
    default.sip.ip_access_control_lists.create(friendly_name="office")
    # A list from another region cannot be mapped.
    expect_error(
        lambda: dublin.sip.domains(domain.sid).auth.calls.credential_list_mappings.create(
            credential_list_sid=default.sip.credential_lists.create(friendly_name="x").sid),
        404, 20404)
    assert credential_list.sid and acl.sid


def test_host_headers_select_regions_like_twilio_api_hosts(twin: Twin) -> None:
    by_host = twin.client(host_header="api.dublin.ie1.twilio.com")
    legacy_host = twin.client(host_header="api.ie1.twilio.com")
    by_prefix = twin.client(region="ie1")
    us = twin.client(host_header="api.twilio.com")
    created = by_host.sip.credential_lists.create(friendly_name="via host")
    assert [c.sid for c in legacy_host.sip.credential_lists.list()] == [created.sid]
    assert [c.sid for c in by_prefix.sip.credential_lists.list()] == [created.sid]
    assert us.sip.credential_lists.list() == []
    not_voice = twin.client(host_header="api.singapore.sg1.twilio.com")
    expect_error(lambda: not_voice.sip.credential_lists.create(friendly_name="x"), 404, 20404)


def test_same_name_in_two_regions_and_one_active_route(twin: Twin) -> None:
    default = twin.client()
    dublin = twin.client(region="ie1")
    us_domain = default.sip.domains.create(domain_name="global.sip.twilio.com")
    eu_domain = dublin.sip.domains.create(domain_name="global.sip.twilio.com")
    expect_error(lambda: dublin.sip.domains.create(domain_name="global.sip.twilio.com"), 400, 21232)
    other = twin.client(twin.subaccount(), region="au1")
    expect_error(lambda: other.sip.domains.create(domain_name="global.sip.twilio.com"), 400, 21232)

    view = ControlPlaneView(twin.store)
    route = default.routes.v2.sip_domains("global.sip.twilio.com").fetch()
    assert route.voice_region == "us1" and route.sid.startswith("QQ")
    snapshot = view.find_domain("global.sip.twilio.com")
    assert snapshot is not None and (snapshot.region, snapshot.sid) == ("us1", us_domain.sid)

    moved = default.routes.v2.sip_domains("global.sip.twilio.com").update(
        voice_region="ie1", friendly_name="to Dublin")
    assert (moved.voice_region, moved.friendly_name) == ("ie1", "to Dublin")
    snapshot = view.find_domain("global.sip.twilio.com")
    assert snapshot is not None and (snapshot.region, snapshot.sid) == ("ie1", eu_domain.sid)


def test_rerouting_needs_the_domain_in_the_target_region(twin: Twin) -> None:
    client = twin.client()
    client.sip.domains.create(domain_name="stay.sip.twilio.com")
    routes = client.routes.v2.sip_domains("stay.sip.twilio.com")
    expect_error(lambda: routes.update(voice_region="au1"), 404, 20404)
    expect_error(lambda: routes.update(voice_region="mars1"), 400, 20001)
    assert routes.fetch().voice_region == "us1"
    expect_error(lambda: client.routes.v2.sip_domains("nope.sip.twilio.com").fetch(), 404, 20404)
    stranger = twin.client(twin.subaccount())
    expect_error(lambda: stranger.routes.v2.sip_domains("stay.sip.twilio.com").fetch(), 404, 20404)


def test_route_change_waits_for_the_propagation_delay(twin_factory: TwinFactory) -> None:
    twin = twin_factory(route_propagation_seconds=300)
    twin.client().sip.domains.create(domain_name="slow.sip.twilio.com")
    twin.client(region="au1").sip.domains.create(domain_name="slow.sip.twilio.com")
    twin.client().routes.v2.sip_domains("slow.sip.twilio.com").update(voice_region="au1")
    now = twin.store.now()
    assert ControlPlaneView(twin.store, clock=lambda: now).find_domain(
        "slow.sip.twilio.com").region == "us1"  # type: ignore[union-attr]
    assert ControlPlaneView(twin.store, clock=lambda: now + 301).find_domain(
        "slow.sip.twilio.com").region == "au1"  # type: ignore[union-attr]
