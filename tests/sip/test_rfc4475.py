"""Every RFC 4475 torture message gets the answer its MANIFEST.tsv row asks for."""

from __future__ import annotations

import contextlib

import pytest

from siptwin.sip.admission import admit
from siptwin.sip.errors import SipParseError
from siptwin.sip.message import Request, Response, parse_datagram
from siptwin.sip.uri import SipUri
from siptwin.sip.validate import UasPolicy

from .torture import EXPECTED, load_manifest

CASES = load_manifest()
# The test UAS also accepts MESSAGE so that mpart01 shows its body is framed and accepted.
POLICY = UasPolicy(
    allowed_methods=frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE"}),
    body_types=frozenset({"application/sdp", "multipart/mixed"}),
)


def uas_answer(data: bytes) -> int | None:
    """The status a minimal UAS built on the core sends back, None when it sends nothing."""
    outcome = admit(data, POLICY)
    if outcome.reply is not None:
        assert outcome.reply.to_bytes()  # the error response itself serialises
        return outcome.reply.status
    if outcome.dropped is not None:
        return None
    message = outcome.message
    if isinstance(message, Response):
        return None  # no client transaction matches: a UAS sends nothing back
    assert isinstance(message, Request)
    return 200


def test_corpus_is_complete() -> None:
    assert len(CASES) == 49
    assert {c.name for c in CASES} == set(EXPECTED)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_torture_message_gets_expected_answer(case) -> None:
    answer = uas_answer(case.data)
    assert answer in EXPECTED[case.name], f"{case.name}: {case.expected_behaviour}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_torture_message_raises_only_the_core_error(case) -> None:
    try:
        message = parse_datagram(case.data)
    except SipParseError:
        return
    for view in ("vias", "from_", "to", "call_id", "cseq", "max_forwards", "contacts",
                 "routes", "record_routes", "content_type", "accept", "expires", "require"):
        with contextlib.suppress(SipParseError):
            getattr(message, view)


def _parse(name: str) -> Request:
    message = parse_datagram(next(c for c in CASES if c.name == name).data)
    assert isinstance(message, Request)
    return message


def test_wsinv_folding_and_whitespace_are_undone() -> None:
    msg = _parse("wsinv")
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[2].branch == "z9hG4bK30239"
    assert msg.headers.get("Subject") == ""
    assert msg.contacts[0].address.param("q") == "0.33"
    assert len(msg.body) == 150


def test_esc01_decodes_escapes_exactly_once() -> None:
    msg = _parse("esc01")
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "sips:user@example.com"
    assert msg.to.uri.user == "user"
    assert msg.from_.uri.user == "I have spaces"
    contact_uri = msg.contacts[0].address.uri
    assert contact_uri.user == "caller"
    assert contact_uri.has_param("lr")
    assert contact_uri.param("name") == "value%41"


def test_escnull_keeps_two_distinct_contacts() -> None:
    msg = _parse("escnull")
    users = [c.address.uri.user for c in msg.contacts]
    assert users == ["\x00", "\x00\x00"]
    assert msg.to.uri.user == "null-\x00-null"


def test_esc02_percent_is_not_an_escape_in_method_or_header_name() -> None:
    msg = _parse("esc02")
    assert msg.method == "RE%47IST%45R"
    assert len(msg.contacts) == 2
    assert msg.headers.get("C%6Fntact") is not None


def test_semiuri_user_contains_semicolon() -> None:
    msg = _parse("semiuri")
    assert msg.uri.user == "user;par=u@example.net"
    assert msg.uri.params == ()


def test_intmeth_keeps_unusual_octets() -> None:
    msg = _parse("intmeth")
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    again = parse_datagram(msg.to_bytes())
    assert again.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert again.to.display_name == msg.to.display_name


def test_dblreq_ignores_trailing_octets() -> None:
    msg = _parse("dblreq")
    assert msg.method == "REGISTER" and msg.body == b""


def test_inv2543_body_runs_to_end_of_datagram() -> None:
    msg = _parse("inv2543")
    assert len(msg.body) == 105
    assert msg.top_via.branch is None and not msg.top_via.is_rfc3261


def test_cparam_unknownparam_belongs_where_it_was_written() -> None:
    header_param = _parse("cparam01").contacts[0].address
    assert header_param.param("unknownparam") is None and any(
        k == "unknownparam" for k, _ in header_param.params
    )
    assert not header_param.uri.has_param("unknownparam")
    uri_param = _parse("cparam02").contacts[0].address
    assert uri_param.uri.has_param("unknownparam") and uri_param.params == ()


def test_regescrt_keeps_escaped_route_in_contact() -> None:
    uri = _parse("regescrt").contacts[0].address.uri
    assert uri.headers == (("Route", "<sip:sip.example.com>"),)
    assert "Route=%3Csip:sip.example.com%3E" in str(uri)


def test_mpart01_body_is_framed_by_content_length() -> None:
    msg = _parse("mpart01")
    assert len(msg.body) == 553 and msg.content_type.type == "multipart/mixed"


def test_longreq_has_34_vias() -> None:
    assert len(_parse("longreq").vias) == 34


def test_bext01_lists_unsupported_require_values() -> None:
    reply = admit(next(c for c in CASES if c.name == "bext01").data, POLICY).reply
    assert reply is not None and reply.status == 420
    assert reply.headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"


def test_unknown_method_answer_lists_allow() -> None:
    reply = admit(next(c for c in CASES if c.name == "intmeth").data, POLICY).reply
    assert reply is not None and "INVITE" in reply.headers.get("Allow")


def test_edge_rejects_max_forwards_zero_with_483() -> None:
    policy = UasPolicy(reject_exhausted_max_forwards=True)
    reply = admit(next(c for c in CASES if c.name == "zeromf").data, policy).reply
    assert reply is not None and reply.status == 483


@pytest.mark.parametrize("case", [c for c in CASES if c.category == "valid"], ids=lambda c: c.name)
def test_valid_messages_round_trip(case) -> None:
    first = parse_datagram(case.data)
    second = parse_datagram(first.to_bytes())
    assert second.start_line() == first.start_line()
    assert list(second.headers) == list(first.headers)
    assert second.body == first.body
