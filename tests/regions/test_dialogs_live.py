"""Dialogs and methods on a live node: CANCEL, BYE, re-INVITE, INFO, OPTIONS, unknown
methods and the ACK timeout (spec §4.2 step 11, issue 4 "Dialog and method handling").

The twin here runs a scripted voice handler that can hold a call unanswered, so a CANCEL can
arrive before the 200, and that keeps every session it was given.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.regions.node import CallSession
from siptwin.settings import build_fidelity
from siptwin.sip.message import make_response
from siptwin.sip.sdp import make_offer
from siptwin.sip.transaction import build_cancel
from siptwin.twin.config import TwinConfig
from siptwin.twin.embedded import EmbeddedTwin
from tests.support.rawsip import RawUac, statuses
from tests.support.twin import ephemeral, worker_network

pytestmark = pytest.mark.asyncio

URI = "sip:1000@acme.sip.us1.twilio.com"


class ScriptedAnswer:
    """Answers after ``answer_after`` seconds (0: at once) unless the call ends first."""

    def __init__(self) -> None:
        self.answer_after = 0.0
        self.sessions: list[CallSession] = []

    async def run(self, session: CallSession) -> None:
        self.sessions.append(session)
        if self.answer_after:
            try:
                await asyncio.wait_for(session.ended.wait(), self.answer_after)
                return
            except TimeoutError:
                pass
        await session.answer()
        await session.ended.wait()


@pytest.fixture
def scripted() -> ScriptedAnswer:
    return ScriptedAnswer()


@pytest.fixture
async def twin(tmp_path, scripted):
    """The conftest twin, with the scripted handler as its voice layer."""
    catalogue = Catalogue.load(default_catalogue_dir()).relocated(worker_network(), port_offset=0)
    catalogue = Catalogue([ephemeral(r) for r in catalogue])
    config = TwinConfig(state_dir=tmp_path / "state", api_port=0, dns_port=0,
                        fidelity=build_fidelity("seed"), catalogue=catalogue)
    instance = EmbeddedTwin(config, handler=scripted)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def node(harness) -> tuple[str, int]:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    return harness.node_port("us1")


async def _established(uac: RawUac, node: tuple[str, int]):
    leg = uac.leg(URI)
    invite = uac.invite(leg)
    got = await uac.transact(invite, node)
    assert statuses(got) == [100, 180, 200], statuses(got)
    uac.ack_success(leg, invite, got[-1], node)
    return leg, invite, got[-1]


async def test_cancel_before_answer_is_200_and_the_invite_gets_487(harness, node, scripted) -> None:
    scripted.answer_after = 30.0
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.invite(leg)
        uac.send(invite, node)
        ringing = await uac.wait_for(lambda m: getattr(m, "status", 0) == 180)
        assert ringing is not None
        cancel = await uac.transact(build_cancel(invite), node)
        assert statuses(cancel) == [200]
        final = await uac.wait_for(lambda m: getattr(m, "status", 0) >= 300
                                   and m.cseq.method == "INVITE")
        assert final is not None and final.status == 487
        assert final.to.tag == ringing.to.tag  # the early dialog's tag
        uac.ack_failure(invite, final, node)
    call = harness.twin.calls.get(leg.call_id)
    assert call.status == "canceled" and call.final_status == 487 and call.answered_at is None
    assert scripted.sessions[0].ended.is_set() and not scripted.sessions[0].answered


async def test_cancel_for_no_pending_invite_is_481(node) -> None:
    async with RawUac() as uac:
        leg = uac.leg(URI)
        got = await uac.transact(uac.request(leg, "CANCEL"), node)
        assert statuses(got) == [481]


async def test_bye_is_200_and_completes_the_call(harness, node) -> None:
    async with RawUac() as uac:
        leg, _, ok = await _established(uac, node)
        assert harness.twin.calls.get(leg.call_id).status == "in-progress"
        got = await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
        assert statuses(got) == [200]
    call = harness.twin.calls.get(leg.call_id)
    assert call.status == "completed" and call.sid.startswith("CA")
    assert call.ended_at is not None and call.ended_at >= call.answered_at


async def test_bye_for_an_unknown_dialog_is_481(node) -> None:
    async with RawUac() as uac:
        leg = uac.leg(URI)
        bye = uac.request(leg, "BYE", to_value=f"<{URI}>;tag={secrets.token_hex(6)}")
        assert statuses(await uac.transact(bye, node)) == [481]


async def test_reinvite_in_dialog_is_200_with_sdp(harness, node) -> None:
    async with RawUac() as uac:
        leg, _, ok = await _established(uac, node)
        offer = make_offer("127.0.0.1", 30000, 2)
        reinvite = uac.in_dialog(leg, "INVITE", ok, body=offer)
        got = await uac.transact(reinvite, node)
        assert statuses(got) == [200]
        answer = got[-1]
        assert answer.to.tag == ok.to.tag
        assert answer.headers.get("Content-Type") == "application/sdp"
        assert b"m=audio " in answer.body and b"RTP/AVP" in answer.body
        uac.ack_success(leg, reinvite, answer, node)
        assert harness.twin.calls.get(leg.call_id).status == "in-progress"
        assert statuses(await uac.transact(uac.in_dialog(leg, "BYE", ok), node)) == [200]


async def test_reinvite_without_offer_repeats_our_sdp(node) -> None:
    async with RawUac() as uac:
        leg, _, ok = await _established(uac, node)
        reinvite = uac.in_dialog(leg, "INVITE", ok)
        got = await uac.transact(reinvite, node)
        assert statuses(got) == [200] and got[-1].body == ok.body
        uac.ack_success(leg, reinvite, got[-1], node)
        assert statuses(await uac.transact(uac.in_dialog(leg, "BYE", ok), node)) == [200]


async def test_reinvite_for_an_unknown_dialog_is_481(node) -> None:
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.invite(leg, to_value=f"<{URI}>;tag={secrets.token_hex(6)}")
        got = await uac.transact(invite, node)
        assert statuses(got) == [481]
        uac.ack_failure(invite, got[-1], node)


async def test_info_dtmf_relay_is_200_and_reaches_the_voice_layer(node, scripted) -> None:
    async with RawUac() as uac:
        leg, _, ok = await _established(uac, node)
        info = uac.in_dialog(leg, "INFO", ok, body=b"Signal=5\r\nDuration=160\r\n",
                             headers=[("Content-Type", "application/dtmf-relay")])
        assert statuses(await uac.transact(info, node)) == [200]
        digit = await asyncio.wait_for(scripted.sessions[0].dtmf.get(), 2)
        assert digit == "5"
        assert statuses(await uac.transact(uac.in_dialog(leg, "BYE", ok), node)) == [200]


async def test_info_outside_a_dialog_is_481(node) -> None:
    async with RawUac() as uac:
        info = uac.request(uac.leg(URI), "INFO", body=b"Signal=1\r\n",
                           headers=[("Content-Type", "application/dtmf-relay")])
        assert statuses(await uac.transact(info, node)) == [481]


async def test_unknown_method_is_501_with_allow(node) -> None:
    async with RawUac() as uac:
        got = await uac.transact(uac.request(uac.leg(URI), "FROBNICATE"), node)
        assert statuses(got) == [501]
        allow = {m.strip() for m in got[-1].headers.get("Allow").split(",")}
        assert allow == set(build_fidelity().allow_methods)


async def test_known_but_unsupported_method_is_405_with_allow(node) -> None:
    async with RawUac() as uac:
        got = await uac.transact(uac.request(uac.leg(URI), "SUBSCRIBE",
                                             headers=[("Event", "presence")]), node)
        assert statuses(got) == [405] and "INVITE" in got[-1].headers.get("Allow")


async def test_options_is_200_with_allow_and_accept(node) -> None:
    async with RawUac() as uac:
        got = await uac.transact(uac.request(uac.leg(URI), "OPTIONS"), node)
        assert statuses(got) == [200]
        assert "INVITE" in got[-1].headers.get("Allow")
        assert got[-1].headers.get("Accept") == "application/sdp"


async def test_no_ack_after_200_ends_the_call_with_32022(harness, node) -> None:
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"ack_timeout": 1.0}))
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.invite(leg)
        uac.send(invite, node)  # and never ACK the 200
        bye = await uac.wait_for(lambda m: getattr(m, "method", "") == "BYE", timeout=5)
        assert bye is not None and bye.call_id == leg.call_id
        uac.send(make_response(bye, 200), node)
        oks = [r for r in uac.responses_to(invite) if r.status == 200]
        assert len(oks) >= 2  # the 200 was retransmitted while the node waited for the ACK
        assert bye.from_.tag == oks[0].to.tag and bye.to.tag == leg.from_value.split("tag=")[1]
    call = harness.twin.calls.get(leg.call_id)
    assert call.status == "failed"
    assert [a.code for a in call.alerts] == [32022]
