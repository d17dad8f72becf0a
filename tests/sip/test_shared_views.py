"""What the core shares between messages decodes exactly as a fresh parse would.

The region node's hot path avoids decoding the same text twice: decoded URIs and name-addrs
are remembered by their text, and a response made from a request inherits the request's
decoded Via, From, To (plus the new tag), Call-ID and CSeq. These tests compare every shared
value with what parsing the serialised message from scratch gives, over the RFC 4475 corpus.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siptwin.sip import address, syntax, uri
from siptwin.sip.admission import admit
from siptwin.sip.errors import SipParseError
from siptwin.sip.message import Request, make_response, parse_datagram
from siptwin.sip.validate import UasPolicy

from .torture import load_manifest

POLICY = UasPolicy(allowed_methods=frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS",
                                              "REGISTER", "MESSAGE"}))
VIEWS = ("vias", "from_", "to", "call_id", "cseq")


def _accepted_requests() -> list[tuple[str, bytes]]:
    out = []
    for case in load_manifest():
        data = case.data
        outcome = admit(data, POLICY)
        if isinstance(outcome.message, Request) and outcome.message.method != "ACK":
            out.append((case.name, data))
    return out


ACCEPTED = _accepted_requests()


def test_the_corpus_yields_requests_to_compare() -> None:
    assert len(ACCEPTED) >= 10


@pytest.mark.parametrize(("name", "data"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
@pytest.mark.parametrize("to_tag", [None, "8xk2"])
def test_response_views_equal_a_fresh_parse(name: str, data: bytes, to_tag: str | None) -> None:
    request = admit(data, POLICY).message  # validation decodes every view it checks
    assert isinstance(request, Request)
    response = make_response(request, 180, to_tag=to_tag)
    fresh = parse_datagram(response.to_bytes())
    for view in VIEWS:
        assert getattr(response, view) == getattr(fresh, view), view
    if to_tag is not None and request.to.tag is None:
        assert response.to.tag == to_tag


@pytest.mark.parametrize(("name", "data"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_remembered_uris_and_addresses_equal_a_fresh_parse(name: str, data: bytes) -> None:
    first = parse_datagram(data)
    remembered = (first.uri, first.from_, first.to)
    uri._DECODED.clear()
    address._DECODED.clear()
    again = parse_datagram(data)
    assert (again.uri, again.from_, again.to) == remembered


def test_a_malformed_uri_is_refused_every_time() -> None:
    for _ in range(2):  # an error is never remembered as a value
        with pytest.raises(SipParseError):
            uri.parse_uri("sip:bad host@")


_TOKEN = "abcXYZ019-.!%*_+`'~"
_VALUE = _TOKEN + ":[]"


@given(st.lists(st.tuples(st.text(_TOKEN, min_size=1, max_size=6),
                          st.none() | st.text(_VALUE, min_size=1, max_size=6)),
                min_size=1, max_size=5))
def test_plain_parameters_parse_the_same_on_the_fast_path(params) -> None:
    text = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)
    fast = syntax.parse_params(text, "Via")
    plain, syntax._PLAIN_PARAMS = syntax._PLAIN_PARAMS, re.compile(r"(?!)")
    try:
        slow = syntax.parse_params(text, "Via")  # the character loop
    finally:
        syntax._PLAIN_PARAMS = plain
    assert fast == slow == tuple(params)


def test_a_response_after_a_change_copies_the_changed_fields() -> None:
    """make_response keeps what it copied of a request for the request's next responses; a
    change of the fields (a stamped top Via, a header set, added or removed) is copied."""
    data = (b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 0\r\n\r\n")
    changes = [
        lambda r: r.replace_top_via(r.top_via.with_params(received="10.0.0.9")),
        lambda r: r.set_header("Call-ID", "d@h"),
        lambda r: r.add_header("Via", "SIP/2.0/UDP b"),
        lambda r: r.remove_header("From"),
        lambda r: r.headers.replace_first_value("Via", "SIP/2.0/TCP c"),
        lambda r: r.drop_views(),
    ]
    for change in changes:
        request = parse_datagram(data)
        make_response(request, 100)  # what it copies is kept from here
        change(request)
        fresh = parse_datagram(request.to_bytes())
        assert (make_response(request, 180, to_tag="t").to_bytes()
                == make_response(fresh, 180, to_tag="t").to_bytes())
