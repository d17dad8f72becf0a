"""REGISTER on a live node (spec §4.8): challenge, bindings, expiry limits, rejections."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD
from tests.support.registration import AOR, contact, register

pytestmark = pytest.mark.asyncio

def error(response) -> str:
    return response.headers.get("X-Twilio-Error") or ""


@pytest.fixture
async def registrar(harness):
    await harness.provision(DomainPlan("acme", sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    return harness.twin.registrar


async def test_register_is_challenged_with_407_then_bound(harness, registrar) -> None:
    got = await register(harness)
    assert [r.status for r in got] == [407, 200]
    challenge = got[0].headers.get("Proxy-Authenticate")
    assert 'realm="sip.twilio.com"' in challenge and 'qop="auth"' in challenge
    assert got[0].headers.get("WWW-Authenticate") is None
    ok = got[-1]
    assert ok.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>;expires=3600"
    [binding] = registrar.bindings(AOR)
    assert binding.contact == "sip:alice@127.0.0.1:5070" and binding.username == "alice"


async def test_register_with_a_wrong_password_is_403_32202(harness, registrar) -> None:
    got = await register(harness, auth=Auth("alice", "Wr0ngPassword9"))
    assert [r.status for r in got] == [407, 403] and error(got[-1]).startswith("32202")
    assert registrar.bindings(AOR) == []


async def test_expires_below_600_is_423_with_min_expires(harness, registrar) -> None:
    got = await register(harness, expires=599)
    assert [r.status for r in got] == [407, 423]
    assert got[-1].headers.get("Min-Expires") == "600"
    assert registrar.bindings(AOR) == []
    # The contact's own expires parameter counts the same way.
    got = await register(harness, contact_value=f"{contact()};expires=120", expires=None)
    assert got[-1].status == 423 and got[-1].headers.get("Min-Expires") == "600"


async def test_expires_of_600_is_granted(harness, registrar) -> None:
    got = await register(harness, expires=600)
    assert got[-1].status == 200 and got[-1].headers.get("Contact").endswith(";expires=600")


async def test_expires_above_3600_is_granted_3600(harness, registrar) -> None:
    got = await register(harness, expires=86400)
    assert got[-1].status == 200
    assert got[-1].headers.get("Contact") == "<sip:alice@127.0.0.1:5070>;expires=3600"


async def test_expires_zero_removes_the_binding(harness, registrar) -> None:
    assert (await register(harness, contact_value=contact(1)))[-1].status == 200
    assert (await register(harness, contact_value=contact(2)))[-1].status == 200
    assert len(registrar.bindings(AOR)) == 2
    got = await register(harness, contact_value=contact(1), expires=0)
    assert got[-1].status == 200
    assert [b.contact for b in registrar.bindings(AOR)] == ["sip:alice@127.0.0.2:5070"]
    # The remaining binding is listed with the time it has left.
    assert got[-1].headers.get("Contact") in (
        "<sip:alice@127.0.0.2:5070>;expires=3600", "<sip:alice@127.0.0.2:5070>;expires=3599")
    # Contact: * with Expires: 0 removes every binding of the AOR.
    got = await register(harness, contact_value="*", expires=0)
    assert got[-1].status == 200 and registrar.bindings(AOR) == []


async def test_bindings_are_shared_by_every_edge(harness, registrar) -> None:
    got = await register(harness, region="ie1", host="acme.sip.dublin.twilio.com")
    assert got[-1].status == 200
    assert [b.contact for b in registrar.bindings(AOR)] == ["sip:alice@127.0.0.1:5070"]
    got = await register(harness, region="us1", contact_value=None, expires=None)  # a query
    assert got[-1].status == 200
    assert got[-1].headers.get("Contact").startswith("<sip:alice@127.0.0.1:5070>;expires=")


async def test_registration_disabled_is_403_32210(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    got = await register(harness)
    assert [r.status for r in got] == [403] and error(got[-1]).startswith("32210")


async def test_no_registration_credential_list_is_403_32212(harness) -> None:
    await harness.provision(DomainPlan("acme", sip_registration=True,
                                       credentials=[("alice", PASSWORD)]))
    got = await register(harness)
    assert [r.status for r in got] == [403] and error(got[-1]).startswith("32212")


async def test_unknown_domain_is_404(harness) -> None:
    got = await register(harness, host="nobody.sip.us1.twilio.com")
    # No account can be attributed, so no code (spec §4.2 step 3); 32002 is <Dial>'s.
    assert [r.status for r in got] == [404] and error(got[-1]) == ""


async def test_an_eleventh_binding_is_refused_with_32007(harness, registrar) -> None:
    for n in range(1, 11):
        assert (await register(harness, contact_value=contact(n)))[-1].status == 200
    assert len(registrar.bindings(AOR)) == 10
    # Refreshing an existing binding is not a new one.
    assert (await register(harness, contact_value=contact(10)))[-1].status == 200
    got = await register(harness, contact_value=contact(11))
    assert got[-1].status == 403 and error(got[-1]).startswith("32007")
    assert len(registrar.bindings(AOR)) == 10
    assert "sip:alice@127.0.0.11:5070" not in {b.contact for b in registrar.bindings(AOR)}
