"""What a domain names must exist (spec 3.1): BYOC trunks (Voice v1, ``client.voice.v1``)
and incoming phone numbers (``client.incoming_phone_numbers``), served per account and
region, and the domain checks of ``ByocTrunkSid`` and ``EmergencyCallerSid`` against them."""

from __future__ import annotations

import re

from twilio.rest import Client

from siptwin.cloud.params import ApiSettings

from .conftest import Twin, TwinFactory, expect_error, expect_list_error

UNKNOWN_TRUNK = "BY" + "a" * 32
UNKNOWN_NUMBER = "PN" + "b" * 32


def test_spec_3_1_a_domain_naming_a_byoc_trunk_that_does_not_exist_is_refused_21300(client: Client) -> None:
    expect_error(lambda: client.sip.domains.create(
        domain_name="trunked.sip.twilio.com", byoc_trunk_sid=UNKNOWN_TRUNK), 400, 21300)
    domain = client.sip.domains.create(domain_name="plain.sip.twilio.com")
    expect_error(lambda: client.sip.domains(domain.sid).update(byoc_trunk_sid=UNKNOWN_TRUNK),
                 400, 21300)
    # malformed is the same documented code ("malformed or non-existent")
    expect_error(lambda: client.sip.domains(domain.sid).update(byoc_trunk_sid="BY123"), 400, 21300)
    assert client.sip.domains(domain.sid).fetch().byoc_trunk_sid is None
    assert [d.domain_name for d in client.sip.domains.list()] == ["plain.sip.twilio.com"]


def test_spec_3_1_a_domain_naming_a_phone_number_that_does_not_exist_is_refused_21231(
        client: Client) -> None:
    expect_error(lambda: client.sip.domains.create(
        domain_name="sos.sip.twilio.com", emergency_caller_sid=UNKNOWN_NUMBER), 400, 21231)
    domain = client.sip.domains.create(domain_name="sos.sip.twilio.com")
    error = expect_error(lambda: client.sip.domains(domain.sid).update(
        emergency_calling_enabled=True, emergency_caller_sid=UNKNOWN_NUMBER), 400, 21231)
    assert UNKNOWN_NUMBER in error.msg
    after = client.sip.domains(domain.sid).fetch()
    assert (after.emergency_caller_sid, after.emergency_calling_enabled) == (None, False)


def test_byoc_trunk_create_fetch_update_page_delete(client: Client) -> None:
    trunks = client.voice.v1.byoc_trunks
    created = trunks.create(friendly_name="carrier A", voice_url="https://pbx.example.net/in",
                            voice_method="get", cnam_lookup_enabled=True)
    assert re.fullmatch(r"BY[0-9a-f]{32}", created.sid)
    assert created.account_sid == client.account_sid
    assert (created.voice_method, created.cnam_lookup_enabled) == ("GET", True)
    assert created.url == f"https://voice.twilio.com/v1/ByocTrunks/{created.sid}"
    assert trunks(created.sid).fetch().friendly_name == "carrier A"
    updated = trunks(created.sid).update(status_callback_url="https://pbx.example.net/status")
    assert (updated.status_callback_url, updated.friendly_name) == (
        "https://pbx.example.net/status", "carrier A")
    others = [trunks.create(friendly_name=f"carrier {n}").sid for n in "BC"]
    assert [t.sid for t in trunks.list(page_size=2)] == [created.sid, *others]
    first = trunks.page(page_size=2)
    second = first.next_page()
    assert [t.sid for t in second] == others[1:] and second.next_page() is None
    expect_error(lambda: trunks.create(voice_method="PUT"), 400, 20001)
    assert trunks(created.sid).delete() is True
    expect_error(lambda: trunks(created.sid).fetch(), 404, 20404)
    expect_error(lambda: trunks(created.sid).delete(), 404, 20404)


def test_incoming_phone_number_create_fetch_update_list_delete(client: Client) -> None:
    numbers = client.incoming_phone_numbers
    number = numbers.create(phone_number="+14155550100", emergency_status="Active")
    assert re.fullmatch(r"PN[0-9a-f]{32}", number.sid)
    assert (number.phone_number, number.friendly_name) == ("+14155550100", "(415) 555-0100")
    assert (number.emergency_status, number.voice_method) == ("Active", "POST")
    assert number.capabilities == {"voice": True, "sms": False, "mms": False, "fax": False}
    numbers.create(phone_number="+442071838750", friendly_name="London desk")
    assert numbers(number.sid).fetch().phone_number == "+14155550100"
    updated = numbers(number.sid).update(voice_url="https://app.example.net/voice")
    assert (updated.voice_url, updated.emergency_status) == ("https://app.example.net/voice", "Active")
    assert [n.friendly_name for n in numbers.list(phone_number="+442071838750")] == ["London desk"]
    assert len(numbers.list()) == 2
    expect_error(lambda: numbers.create(phone_number="+14155550100"), 400, 21422)
    expect_error(lambda: numbers.create(phone_number="415-555-0101"), 400, 21421)
    expect_error(lambda: numbers.create(area_code="415"), 400, 21421)
    expect_error(lambda: numbers.create(phone_number="+14155550102", emergency_status="On"),
                 400, 20001)
    assert numbers(number.sid).delete() is True
    expect_error(lambda: numbers(number.sid).fetch(), 404, 20404)
    assert [n.phone_number for n in numbers.list()] == ["+442071838750"]


def test_the_phone_number_list_reads_its_documented_filters(client: Client) -> None:
    numbers = client.incoming_phone_numbers
    numbers.create(phone_number="+14155550100")
    numbers.create(phone_number="+442071838750", friendly_name="London desk")
    assert [n.phone_number for n in numbers.list(friendly_name="London desk")] == ["+442071838750"]
    assert [n.phone_number for n in numbers.list(friendly_name="London")] == []
    assert len(numbers.list(beta=False)) == len(numbers.list(beta=True)) == 2  # none is new
    assert len(numbers.list(origin="twilio")) == 2
    assert numbers.list(origin="hosted") == []
    expect_list_error(client, lambda: numbers.list(beta="maybe"), 400, 20001)
    expect_list_error(client, lambda: numbers.list(origin="ported"), 400, 20001)


def test_a_domain_names_an_existing_trunk_and_emergency_caller(client: Client) -> None:
    trunk = client.voice.v1.byoc_trunks.create(friendly_name="carrier")
    number = client.incoming_phone_numbers.create(phone_number="+14155550199",
                                                  emergency_status="Active")
    domain = client.sip.domains.create(
        domain_name="e911.sip.twilio.com", byoc_trunk_sid=trunk.sid,
        emergency_calling_enabled=True, emergency_caller_sid=number.sid)
    assert (domain.byoc_trunk_sid, domain.emergency_caller_sid) == (trunk.sid, number.sid)
    cleared = client.sip.domains(domain.sid).update(byoc_trunk_sid="", emergency_caller_sid="")
    assert (cleared.byoc_trunk_sid, cleared.emergency_caller_sid) == (None, None)


def test_trunks_and_numbers_belong_to_one_account_and_one_region(twin: Twin) -> None:
    master = twin.client()
    trunk = master.voice.v1.byoc_trunks.create(friendly_name="us1 trunk")
    number = master.incoming_phone_numbers.create(phone_number="+14155550142")
    dublin = twin.client(region="ie1")
    expect_error(lambda: dublin.voice.v1.byoc_trunks(trunk.sid).fetch(), 404, 20404)
    expect_error(lambda: dublin.sip.domains.create(
        domain_name="dub.sip.twilio.com", byoc_trunk_sid=trunk.sid), 400, 21300)
    expect_error(lambda: dublin.sip.domains.create(
        domain_name="dub.sip.twilio.com", emergency_caller_sid=number.sid), 400, 21231)
    assert dublin.voice.v1.byoc_trunks.list() == []
    sub = twin.client(twin.subaccount())
    expect_error(lambda: sub.sip.domains.create(
        domain_name="sub.sip.twilio.com", byoc_trunk_sid=trunk.sid), 400, 21300)
    # the host names the SDK would use (voice.twilio.com) select the region like api's do
    by_host = twin.client(host_header="voice.dublin.ie1.twilio.com")
    assert by_host.voice.v1.byoc_trunks.create(friendly_name="ie1 trunk").sid not in (trunk.sid,)
    assert [t.friendly_name for t in dublin.voice.v1.byoc_trunks.list()] == ["ie1 trunk"]


def test_spec_3_1_deleting_a_trunk_or_number_a_domain_names_is_refused_by_default(client: Client) -> None:
    trunk = client.voice.v1.byoc_trunks.create()
    number = client.incoming_phone_numbers.create(phone_number="+14155550123")
    domain = client.sip.domains.create(domain_name="held.sip.twilio.com",
                                       byoc_trunk_sid=trunk.sid, emergency_caller_sid=number.sid)
    error = expect_error(lambda: client.voice.v1.byoc_trunks(trunk.sid).delete(), 400, 20001)
    assert domain.sid in error.msg and "byoc_trunk_sid" in error.msg
    error = expect_error(lambda: client.incoming_phone_numbers(number.sid).delete(), 400, 20001)
    assert domain.sid in error.msg and "emergency_caller_sid" in error.msg
    assert client.voice.v1.byoc_trunks(trunk.sid).fetch().sid == trunk.sid
    assert client.incoming_phone_numbers(number.sid).fetch().sid == number.sid
    client.sip.domains(domain.sid).update(byoc_trunk_sid="")
    assert client.voice.v1.byoc_trunks(trunk.sid).delete() is True


def test_referenced_delete_clear_deletes_and_clears_the_domain(twin_factory: TwinFactory) -> None:
    client = twin_factory(api_settings=ApiSettings(referenced_delete="clear")).client()
    trunk = client.voice.v1.byoc_trunks.create()
    number = client.incoming_phone_numbers.create(phone_number="+14155550124")
    domain = client.sip.domains.create(domain_name="loose.sip.twilio.com",
                                       byoc_trunk_sid=trunk.sid, emergency_caller_sid=number.sid)
    assert client.voice.v1.byoc_trunks(trunk.sid).delete() is True
    assert client.incoming_phone_numbers(number.sid).delete() is True
    after = client.sip.domains(domain.sid).fetch()
    assert (after.byoc_trunk_sid, after.emergency_caller_sid) == (None, None)


def test_emergency_caller_check_format_accepts_any_pn_sid(twin_factory: TwinFactory) -> None:
    client = twin_factory(api_settings=ApiSettings(emergency_caller_check="format")).client()
    domain = client.sip.domains.create(domain_name="lax.sip.twilio.com",
                                       emergency_caller_sid=UNKNOWN_NUMBER)
    assert domain.emergency_caller_sid == UNKNOWN_NUMBER
    # the trunk check is Twilio's documented 21300 and has no switch
    expect_error(lambda: client.sip.domains(domain.sid).update(byoc_trunk_sid=UNKNOWN_TRUNK),
                 400, 21300)


def test_bad_page_token_on_byoc_trunks_is_20001(client: Client) -> None:
    expect_list_error(client, lambda: client.voice.v1.byoc_trunks.page(page_token="nonsense"),
                      400, 20001)
