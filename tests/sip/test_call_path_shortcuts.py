"""Property tests holding the call-path shortcuts (ninth and eleventh sessions) to the
general code."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from siptwin.sip.address import NameAddr
from siptwin.sip.errors import SipParseError
from siptwin.sip.headers import Headers, Via
from siptwin.sip.message import Request, Response, make_response, parse_datagram
from siptwin.sip.routing import stamped_hop
from siptwin.sip.syntax import param_lookup
from siptwin.sip.transaction import server_key
from siptwin.sip.uri import parse_uri

from .torture import corpus_messages

header_names = st.sampled_from(["Via", "v", "To", "Contact", "X-A", "Call-ID", "Content-Length"])
header_values = st.sampled_from(["a", "b, c", "", "SIP/2.0/UDP h;branch=z9hG4bK1", "x;y=z"])
operations = st.lists(st.one_of(
    st.tuples(st.just("add"), header_names, header_values),
    st.tuples(st.just("set"), header_names, header_values),
    st.tuples(st.just("remove"), header_names, st.just("")),
    st.tuples(st.just("replace_first_value"), header_names, header_values),
    st.tuples(st.just("pack"), st.just(""), st.just("")),
    st.tuples(st.just("to_text"), st.just(""), st.just("")),
    st.tuples(st.just("get"), header_names, st.just("")),
), max_size=12)


@settings(max_examples=400)
@given(st.lists(st.tuples(header_names, header_values), max_size=5), operations)
def test_kept_header_text_is_the_text_of_the_fields(
        fields: list[tuple[str, str]], ops: list[tuple[str, str, str]]) -> None:
    """Headers keeps its serialised text from one to_text() to the next change: whatever
    the changes, packing and unpacking in between, to_text() is what the fields serialise to."""
    headers = Headers(fields)
    for op, name, value in ops:
        if op == "add":
            headers.add(name, value)
        elif op == "set":
            headers.set(name, value)
        elif op == "remove":
            headers.remove(name)
        elif op == "replace_first_value":
            with contextlib.suppress(KeyError):  # (no such header)
                headers.replace_first_value(name, value)
        elif op == "pack":
            headers.pack()
        elif op == "to_text":
            headers.to_text()
        else:
            headers.get(name)
        assert headers.to_text() == "".join(f"{n}: {v}\r\n" for n, v in list(headers))


via_params = st.lists(st.sampled_from(
    [";rport", ";RPORT", ";rport=7", ";received=10.0.0.9", ";maddr=239.1.1.1", ";x=1",
     " ; rport", ";received=h"]), max_size=3)


@settings(max_examples=300)
@given(st.sampled_from(["SIP/2.0/UDP 10.0.0.1", "SIP/2.0/UDP 10.0.0.1:5070", "SIP/2.0/TCP h.example",
                        "SIP/2.0/UDP [::1]:5062", "SIP / 2.0 / UDP 10.0.0.2"]),
       st.sampled_from([";branch=z9hG4bK1", ";branch=z9hG4bK-77-x", ";BRANCH=z9hG4bKa"]),
       via_params, st.sampled_from(["udp", "tcp"]), st.sampled_from(["10.0.0.1", "127.0.0.5"]),
       st.sampled_from([5060, 40000]))
def test_an_ack_matched_by_branch_has_the_key_of_its_stamped_self(
        sent_by: str, branch: str, params: list[str], transport: str, host: str,
        port: int) -> None:
    """The node leaves the Via of an ACK with an RFC 3261 branch unstamped (nothing answers
    an ACK): its transaction key is the one the stamped ACK has."""
    via = sent_by + "".join(params[:1]) + branch + "".join(params[1:])
    data = (f"ACK sip:h SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n"
            "Call-ID: 1@h\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
    keys = []
    for stamp in (False, True):
        ack = parse_datagram(data)
        try:
            if stamp:
                stamped_hop(ack, transport, host, port)
            keys.append(server_key(ack))
        except SipParseError as err:
            keys.append(err.reason)
    assert keys[0] == keys[1]
    assert isinstance(keys[0], str)  # (an RFC 3261 key: branch, sent-by and method)


def _quickened() -> list[type]:
    import siptwin.regions.node  # noqa: F401  (imports every module that quickens a class)
    import siptwin.transport.endpoint  # noqa: F401
    from siptwin.sip.frozen import QUICKENED

    return list(dict.fromkeys(QUICKENED))


def test_the_hot_value_classes_are_quickened() -> None:
    import siptwin.sip.headers

    names = {cls.__name__ for cls in _quickened()}
    assert "Source" in names  # (transport: never compiled)
    if not siptwin.sip.headers.__file__.endswith(".so"):  # (mypyc's classes are its own)
        assert {"Via", "NameAddr", "SipUri", "Hop", "Send", "RequestReceived",
                "Admission"} <= names


any_values = st.one_of(st.none(), st.integers(), st.text(max_size=5),
                       st.tuples(st.text(max_size=3)), st.booleans())


@settings(max_examples=300)
@given(st.sampled_from(_quickened()), st.data())
def test_a_quickened_init_makes_what_the_generated_one_makes(cls: type, data: st.DataObject) -> None:
    """quicken's __init__ stores the same values as the dataclass's own (given positionally,
    by keyword or left to their defaults, init-less fields included), and the object stays
    frozen."""
    import dataclasses

    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f for f in fields if f.default is dataclasses.MISSING]
    given_ = data.draw(st.integers(len(required), len(fields)))
    values = [data.draw(any_values) for _ in fields[:given_]]
    by_keyword = data.draw(st.booleans())
    args, kwargs = ((), {f.name: v for f, v in zip(fields, values, strict=False)}) if by_keyword \
        else (tuple(values), {})
    quick = cls(*args, **kwargs)
    reference = object.__new__(cls)
    cls.__init__.generated(reference, *args, **kwargs)
    for f in dataclasses.fields(cls):
        assert getattr(quick, f.name) == getattr(reference, f.name)
    assert quick == reference
    assert getattr(quick, "__dict__", None) == getattr(reference, "__dict__", None)
    name = fields[0].name
    try:
        setattr(quick, name, 1)
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError(f"{cls.__name__} is no longer frozen")


lookup_params = st.lists(st.tuples(
    st.sampled_from(["tag", "Tag", "TAG", "branch", "Branch", "BRANCH", "x", "tags"]),
    st.one_of(st.none(), st.sampled_from(["v", "", '"q"', '"a\\"b"', '"', "z9hG4bK1"]))),
    max_size=4).map(tuple)


@given(lookup_params)
def test_tag_and_branch_read_as_the_parameter_lookup(params: tuple[tuple[str, str | None], ...]
                                                     ) -> None:
    """NameAddr.tag and Via.branch (param_lookup inlined) read what param_lookup reads, or
    raise what it raises."""
    def read(lookup: Callable[[], str | None]) -> str | None:
        try:
            return lookup()
        except SipParseError as err:
            return "error: " + err.reason

    addr, via = NameAddr(parse_uri("sip:h"), None, params), Via("SIP/2.0", "UDP", "h", None, params)
    assert read(lambda: addr.tag) == read(lambda: param_lookup(params, "tag"))
    assert read(lambda: via.branch) == read(lambda: param_lookup(params, "branch"))


def _serialised(message: Request | Response) -> bytes:
    head = f"{message.start_line()}\r\n{message.headers.to_text()}\r\n"
    return head.encode("utf-8", "surrogateescape") + message.body


@settings(max_examples=200)
@given(st.sampled_from(corpus_messages()), st.sampled_from([100, 180, 407, 200]),
       st.sampled_from([None, "a-tag"]), st.booleans())
def test_a_message_serialises_as_its_start_line_and_header_text(
        data: bytes, status: int, to_tag: str | None, pack: bool) -> None:
    """Request.to_bytes and Response.to_bytes (start_line and the packed Headers.to_text
    inlined) give the start line, the header text and the body, packed or not."""
    try:
        message = parse_datagram(data)
    except SipParseError:
        return
    messages: list[Request | Response] = [message]
    if isinstance(message, Request):
        messages.append(make_response(message, status, to_tag=to_tag, body=b"v=0\r\n"))
    for m in messages:
        if pack:
            m.drop_views()
        else:
            m.headers.add("X-Unpacked", "1")  # (fields as a list again)
        assert m.to_bytes() == _serialised(m)


def test_credentials_of_a_request_without_them_are_none() -> None:
    """Request.credentials gives [] for an absent header (without parsing) and the parsed
    values of a present one, by any spelling of its name."""
    request = parse_datagram(
        b"INVITE sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:b@h>\r\nCall-ID: 1@h\r\nCSeq: 1 INVITE\r\n"
        b'proxy-authorization: Digest username="alice", realm="r", nonce="n", uri="sip:h", '
        b'response="0"\r\nContent-Length: 0\r\n\r\n')
    assert isinstance(request, Request)
    assert request.credentials("Authorization") == []
    assert request.credentials("authorization") == []
    for name in ("Proxy-Authorization", "PROXY-AUTHORIZATION"):
        (credentials,) = request.credentials(name)
        assert (credentials.username, credentials.realm) == ("alice", "r")
