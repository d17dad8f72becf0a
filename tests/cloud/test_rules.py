"""The pure rules: domain names, passwords, addresses, region selection."""

from __future__ import annotations

import pytest

from siptwin.cloud import rules
from siptwin.cloud.api_region import region_from_host, select_region
from siptwin.cloud.errors import ErrorCode, TwilioError
from siptwin.cloud.scope import TABLE_SCOPES, StateScope
from siptwin.cloud.store import Store

ACCOUNT = "AC" + "a" * 32


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("Acme.SIP.twilio.com", "acme.sip.twilio.com"), ("a-1.b2.sip.twilio.com", "a-1.b2.sip.twilio.com"),
     (f"{ACCOUNT}.sip.twilio.com", f"{ACCOUNT.lower()}.sip.twilio.com")],
)
def test_domain_names_are_lower_cased(raw: str, stored: str) -> None:
    assert rules.domain_name(raw, ACCOUNT) == stored


@pytest.mark.parametrize(
    "raw",
    ["acme.sip.twilio.co", "acme.twilio.com", "a_b.sip.twilio.com", "a-.sip.twilio.com",
     ".sip.twilio.com", "é.sip.twilio.com", f"ac{'b' * 32}.sip.twilio.com",
     ("a" * 63 + ".") * 4 + "sip.twilio.com"],
)
def test_invalid_domain_names_are_21232(raw: str) -> None:
    with pytest.raises(TwilioError) as caught:
        rules.domain_name(raw, ACCOUNT)
    assert (caught.value.http_status, caught.value.code) == (400, ErrorCode.INVALID_DOMAIN)


def test_parent_domain_name() -> None:
    assert rules.parent_domain_name("a.b.sip.twilio.com") == "b.sip.twilio.com"
    assert rules.parent_domain_name("b.sip.twilio.com") is None


@pytest.mark.parametrize("secret", ["Harbour7Lights", "aaaaaaaaaA1a", "Zz9" * 4, "A1a" * 50])
def test_passwords_meeting_the_policy_pass(secret: str) -> None:
    assert rules.password(secret) == secret


@pytest.mark.parametrize("secret", ["Harbour7Ligh"[:11], "harbour7lights", "HARBOUR7LIGHTS",
                                    "HarbourLights", ""])
def test_passwords_failing_the_policy_are_21243(secret: str) -> None:
    with pytest.raises(TwilioError) as caught:
        rules.password(secret)
    assert caught.value.code == ErrorCode.CREDENTIAL_VALIDATION
    assert not secret or secret not in caught.value.message


def test_auth_type_is_alphabetical_without_spaces() -> None:
    kinds = [rules.ListKind.IP_ACCESS_CONTROL_LIST, rules.ListKind.CREDENTIAL_LIST]
    assert rules.auth_type(kinds) == "CREDENTIAL_LIST,IP_ACL"
    assert rules.auth_type([]) == ""


@pytest.mark.parametrize(
    ("host", "region"),
    [("api.twilio.com", "us1"), ("api.dublin.ie1.twilio.com", "ie1"), ("api.ie1.twilio.com", "ie1"),
     ("API.Sydney.AU1.twilio.com:443", "au1"), ("127.0.0.1:8080", None), ("localhost", None),
     ("routes.twilio.com", "us1"), (None, None)],
)
def test_region_from_host(host: str | None, region: str | None) -> None:
    assert region_from_host(host) == region


def test_region_prefix_is_stripped_and_must_agree_with_host() -> None:
    selection = select_region("127.0.0.1:1", "/au1/2010-04-01/Accounts.json")
    assert (selection.region, selection.path) == ("au1", "/2010-04-01/Accounts.json")
    assert select_region(None, "/2010-04-01/Accounts.json").region == "us1"
    with pytest.raises(TwilioError):
        select_region("api.dublin.ie1.twilio.com", "/au1/2010-04-01/Accounts.json")


def test_every_table_has_a_declared_scope(tmp_path: object) -> None:
    from pathlib import Path

    store = Store.open(Path(str(tmp_path)))
    with store._read() as cx:
        tables = {row[0] for row in cx.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    store.close()
    assert tables == set(TABLE_SCOPES)
    assert TABLE_SCOPES["domain_routes"] is StateScope.GLOBAL
    assert TABLE_SCOPES["domains"] is StateScope.PER_ACCOUNT_PER_REGION
