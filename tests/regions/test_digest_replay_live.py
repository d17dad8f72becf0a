"""Digest replay is refused on a live node (spec §4.2 step 7, issue 4 acceptance).

Nonces are stateless HMACs bound to the Call-ID and the packet's source address; the node
keeps the highest nonce count seen per nonce. Requests are built by hand so credentials can be
reused exactly as an attacker or a broken PBX would.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.digest import answer_challenge, parse_challenge
from tests.support import PASSWORD
from tests.support.rawsip import RawUac, statuses
from tests.support.twin import worker_network

pytestmark = pytest.mark.asyncio

URI = "sip:+14155550100@acme.sip.us1.twilio.com"


def other_source() -> str:
    """A loopback address of this worker that no node uses."""
    return str(ipaddress.ip_network(worker_network()).network_address + 201)


async def _challenged(uac: RawUac, leg, node: tuple[str, int]):
    """Send an INVITE without credentials; returns the 407's challenge after ACKing it."""
    invite = uac.invite(leg)
    got = await uac.transact(invite, node)
    assert statuses(got) == [100, 407], statuses(got)
    uac.ack_failure(invite, got[-1], node)
    header = got[-1].headers.get("Proxy-Authenticate")
    assert header is not None
    return parse_challenge(header)


def _authorization(challenge, uri: str = URI, password: str = PASSWORD, nc: int = 1):
    cred = answer_challenge(challenge, "INVITE", uri, "alice", password, nc=nc)
    return [("Proxy-Authorization", cred.to_header())]


@pytest.fixture
async def node(harness) -> tuple[str, int]:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    return harness.node_port("us1")


async def test_replayed_nonce_and_count_is_403_32202(harness, node) -> None:
    async with RawUac() as uac:
        leg = uac.leg(URI)
        authorization = _authorization(await _challenged(uac, leg, node))
        first = uac.invite(leg, headers=authorization)
        answered = await uac.transact(first, node)
        assert statuses(answered) == [100, 180, 200]
        uac.ack_success(leg, first, answered[-1], node)

        # Same Call-ID, a new CSeq and branch, the very same Proxy-Authorization.
        replay = uac.invite(leg, headers=authorization)
        assert replay.top_via.branch != first.top_via.branch
        refused = await uac.transact(replay, node)
        assert statuses(refused) == [100, 403]
        assert refused[-1].headers.get("X-Twilio-Error") or "".startswith("32202")
        uac.ack_failure(replay, refused[-1], node)
        record = harness.twin.calls.get(leg.call_id)
        assert record.decided_by == "digest_credentials_valid"
        assert "nonce count replayed" in record.notes

        bye = await uac.transact(uac.in_dialog(leg, "BYE", answered[-1]), node)
        assert statuses(bye) == [200]


async def test_nonce_of_another_call_id_gets_a_fresh_challenge(harness, node) -> None:
    async with RawUac() as uac:
        donor = uac.leg(URI)
        challenge = await _challenged(uac, donor, node)
        leg = uac.leg(URI)  # another Call-ID presents the donor's nonce
        invite = uac.invite(leg, headers=_authorization(challenge))
        got = await uac.transact(invite, node)
        assert statuses(got) == [100, 407]
        uac.ack_failure(invite, got[-1], node)
        fresh = parse_challenge(got[-1].headers.get("Proxy-Authenticate"))
        assert fresh.nonce != challenge.nonce and not fresh.stale
        assert harness.twin.calls.get(leg.call_id).status == "challenged"
        assert any("nonce not issued" in n for n in harness.twin.calls.get(leg.call_id).notes)

        # Answering its own challenge, that call goes through.
        retry = uac.invite(leg, headers=_authorization(fresh))
        answered = await uac.transact(retry, node)
        assert statuses(answered) == [100, 180, 200]
        uac.ack_success(leg, retry, answered[-1], node)
        assert statuses(await uac.transact(uac.in_dialog(leg, "BYE", answered[-1]), node)) == [200]


async def test_nonce_presented_from_another_source_gets_a_fresh_challenge(harness, node) -> None:
    async with RawUac() as owner, RawUac(other_source()) as thief:
        leg = owner.leg(URI)
        challenge = await _challenged(owner, leg, node)
        authorization = _authorization(challenge)

        # Same Call-ID, same credentials, but the packet comes from another address.
        stolen = thief.invite(leg, headers=authorization)
        got = await thief.transact(stolen, node)
        assert statuses(got) == [100, 407]
        thief.ack_failure(stolen, got[-1], node)
        fresh = parse_challenge(got[-1].headers.get("Proxy-Authenticate"))
        assert fresh.nonce != challenge.nonce and not fresh.stale

        # The owner's nonce was not spent by the refused attempt.
        mine = owner.invite(leg, headers=authorization)
        answered = await owner.transact(mine, node)
        assert statuses(answered) == [100, 180, 200]
        owner.ack_success(leg, mine, answered[-1], node)
        assert statuses(await owner.transact(owner.in_dialog(leg, "BYE", answered[-1]), node)) == [200]


async def test_expired_nonce_gets_a_fresh_challenge_with_stale_true(harness, node) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"nonce_lifetime": 1.0}))
    async with RawUac() as uac:
        leg = uac.leg(URI)
        challenge = await _challenged(uac, leg, node)
        await asyncio.sleep(1.3)
        late = uac.invite(leg, headers=_authorization(challenge))
        got = await uac.transact(late, node)
        assert statuses(got) == [100, 407]
        uac.ack_failure(late, got[-1], node)
        fresh = parse_challenge(got[-1].headers.get("Proxy-Authenticate"))
        assert fresh.stale and fresh.nonce != challenge.nonce
        assert 'stale=true' in got[-1].headers.get("Proxy-Authenticate")

        retry = uac.invite(leg, headers=_authorization(fresh))
        answered = await uac.transact(retry, node)
        assert statuses(answered) == [100, 180, 200]
        uac.ack_success(leg, retry, answered[-1], node)
        assert statuses(await uac.transact(uac.in_dialog(leg, "BYE", answered[-1]), node)) == [200]


async def test_expired_nonce_with_a_wrong_password_is_still_403(harness, node) -> None:
    """stale=true only tells a client whose password was right to retry with a new nonce."""
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"nonce_lifetime": 1.0}))
    async with RawUac() as uac:
        leg = uac.leg(URI)
        challenge = await _challenged(uac, leg, node)
        await asyncio.sleep(1.3)
        late = uac.invite(leg, headers=_authorization(challenge, password="Wr0ngPassword9"))
        got = await uac.transact(late, node)
        assert statuses(got) == [100, 403]
        assert got[-1].headers.get("X-Twilio-Error") or "".startswith("32202")
        uac.ack_failure(late, got[-1], node)


@pytest.mark.parametrize("stale", [False, True])
async def test_a_challenge_spliced_around_its_nonce_is_the_one_make_challenge_writes(stale) -> None:
    import os

    from siptwin.regions.pipeline import REALM, _challenge_around_nonce
    from siptwin.sip.digest import NonceIssuer, make_challenge, make_opaque

    issuer = NonceIssuer(os.urandom(32))
    opaque = make_opaque()
    for n in range(500):
        nonce = issuer.issue(1_700_000_000.0 + n, REALM, os.urandom(n % 40))
        before, after = _challenge_around_nonce(opaque, stale)
        assert before + nonce + after == make_challenge(REALM, nonce, opaque,
                                                        stale=stale).to_header()
