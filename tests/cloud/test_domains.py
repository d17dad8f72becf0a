"""SIP Domains through the official SDK: CRUD, paging, domain-name rules, limits."""

from __future__ import annotations

import re

from twilio.rest import Client

from siptwin.cloud.model import Limits

from .conftest import Twin, TwinFactory, expect_error

SID = re.compile(r"^SD[0-9a-f]{32}$")


def test_domain_create_fetch_update_delete_round_trip(client: Client) -> None:
    created = client.sip.domains.create(
        domain_name="Acme-HQ.sip.twilio.com",
        friendly_name="ACME HQ",
        voice_url="https://app.example.net/sip/voice",
        voice_method="get",
    )
    assert SID.match(created.sid)
    assert created.domain_name == "acme-hq.sip.twilio.com"  # stored lower-case
    assert created.auth_type == ""
    assert created.api_version == "2010-04-01"
    assert (created.sip_registration, created.secure, created.emergency_calling_enabled) == (
        False, False, False)
    assert created.voice_method == "GET"
    assert created.voice_fallback_method == "POST"
    assert created.voice_fallback_url is None

    fetched = client.sip.domains(created.sid).fetch()
    assert fetched.friendly_name == "ACME HQ"

    trunk = client.voice.v1.byoc_trunks.create(friendly_name="carrier")
    number = client.incoming_phone_numbers.create(phone_number="+14155550100")
    updated = client.sip.domains(created.sid).update(
        secure=True, sip_registration=True, voice_status_callback_url="https://cb.example.net/s",
        byoc_trunk_sid=trunk.sid, emergency_caller_sid=number.sid,
    )
    assert (updated.secure, updated.sip_registration) == (True, True)
    assert updated.friendly_name == "ACME HQ"  # untouched fields stay
    assert (updated.byoc_trunk_sid, updated.emergency_caller_sid) == (trunk.sid, number.sid)

    renamed = client.sip.domains(created.sid).update(domain_name="acme-new.sip.twilio.com")
    assert renamed.domain_name == "acme-new.sip.twilio.com"

    assert client.sip.domains(created.sid).delete() is True
    expect_error(lambda: client.sip.domains(created.sid).fetch(), 404, 20404)


def test_domain_list_pages_with_page_size_and_next_page(client: Client) -> None:
    names = [f"page{i}.sip.twilio.com" for i in range(7)]
    for name in names:
        client.sip.domains.create(domain_name=name)
    assert [d.domain_name for d in client.sip.domains.list(page_size=3)] == names
    second = client.sip.domains.page(page_size=3, page_number=1)
    assert [d.domain_name for d in second] == names[3:6]
    third = second.next_page()
    assert [d.domain_name for d in third] == names[6:]
    assert third.next_page() is None
    assert [d.domain_name for d in client.sip.domains.list(limit=4, page_size=2)] == names[:4]


def test_empty_domain_list_has_zero_start_and_end(twin: Twin, client: Client) -> None:
    assert client.sip.domains.list() == []
    http = client.http_client
    assert '"start":0' in http.last_body and '"end":0' in http.last_body  # type: ignore[attr-defined]


def test_invalid_domain_names_are_refused_with_21232(client: Client) -> None:
    for bad in ("acme.example.com", "ac_me.sip.twilio.com", "-acme.sip.twilio.com",
                "sip.twilio.com", "a..b.sip.twilio.com", "x" * 64 + ".sip.twilio.com"):
        expect_error(lambda bad=bad: client.sip.domains.create(domain_name=bad), 400, 21232)
    assert client.sip.domains.list() == []


def test_duplicate_domain_name_is_refused_in_any_account_case_blind(twin: Twin) -> None:
    client = twin.client()
    client.sip.domains.create(domain_name="taken.sip.twilio.com")
    error = expect_error(
        lambda: client.sip.domains.create(domain_name="TAKEN.sip.twilio.com"), 400, 21232
    )
    assert "already exists" in error.msg
    other = twin.client(twin.subaccount())
    expect_error(lambda: other.sip.domains.create(domain_name="taken.sip.twilio.com"), 400, 21232)


def test_account_sid_label_is_reserved_for_that_account(twin: Twin) -> None:
    client = twin.client()
    own = f"{twin.master.sid.lower()}.sip.twilio.com"
    assert client.sip.domains.create(domain_name=own).domain_name == own
    stranger = f"ac{'1' * 32}.sip.twilio.com"
    expect_error(lambda: client.sip.domains.create(domain_name=stranger), 400, 21232)


def test_subdomain_needs_a_parent_owned_by_the_account_or_its_parent(twin: Twin) -> None:
    master = twin.client()
    expect_error(
        lambda: master.sip.domains.create(domain_name="eng.corp.sip.twilio.com"), 400, 21232
    )
    master.sip.domains.create(domain_name="corp.sip.twilio.com")
    master.sip.domains.create(domain_name="eng.corp.sip.twilio.com")

    sub_account = twin.subaccount()
    sub = twin.client(sub_account)
    assert sub.sip.domains.create(domain_name="ops.corp.sip.twilio.com").account_sid == (
        sub_account.sid
    )
    own = sub.sip.domains.create(domain_name="subowned.sip.twilio.com")
    # The master is the sub-account's parent, not the other way round: no sub-domain for it.
    expect_error(
        lambda: master.sip.domains.create(domain_name="x.subowned.sip.twilio.com"), 400, 21232
    )
    sibling = twin.client(twin.subaccount("sibling"))
    expect_error(
        lambda: sibling.sip.domains.create(domain_name="y.subowned.sip.twilio.com"), 400, 21232
    )
    assert own.sid


def test_deleting_or_renaming_a_domain_with_subdomains_is_refused_with_21233(
    client: Client,
) -> None:
    parent = client.sip.domains.create(domain_name="top.sip.twilio.com")
    child = client.sip.domains.create(domain_name="leaf.top.sip.twilio.com")
    expect_error(lambda: client.sip.domains(parent.sid).delete(), 400, 21233)
    expect_error(
        lambda: client.sip.domains(parent.sid).update(domain_name="moved.sip.twilio.com"),
        400, 21233,
    )
    client.sip.domains(child.sid).delete()
    assert client.sip.domains(parent.sid).delete() is True


def test_domain_limit_per_account_is_21230(twin_factory: TwinFactory) -> None:
    twin = twin_factory(Limits(domains_per_account=3))
    client = twin.client()
    for i in range(3):
        client.sip.domains.create(domain_name=f"d{i}.sip.twilio.com")
    expect_error(lambda: client.sip.domains.create(domain_name="d3.sip.twilio.com"), 400, 21230)
    assert len(client.sip.domains.list()) == 3


def test_bad_domain_parameters_are_21231_and_write_nothing(client: Client) -> None:
    domain = client.sip.domains.create(domain_name="strict.sip.twilio.com")
    for bad in (
        {"voice_url": "not a url"},
        {"voice_method": "PUT"},
        {"friendly_name": "f" * 65},
        {"emergency_caller_sid": "XX" + "0" * 32},
    ):
        expect_error(lambda bad=bad: client.sip.domains(domain.sid).update(**bad), 400, 21231)
        expect_error(
            lambda bad=bad: client.sip.domains.create(domain_name="new.sip.twilio.com", **bad),
            400, 21231,
        )
    after = client.sip.domains(domain.sid).fetch()
    assert (after.voice_url, after.voice_method, after.friendly_name) == (None, "POST", None)
    assert [d.domain_name for d in client.sip.domains.list()] == ["strict.sip.twilio.com"]
