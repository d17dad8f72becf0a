"""Property tests: round trips of messages, URIs and headers, and a bounded parser fuzz."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siptwin.sip.address import parse_name_addr
from siptwin.sip.admission import admit
from siptwin.sip.errors import SipParseError
from siptwin.sip.headers import parse_via
from siptwin.sip.message import StreamFramer, make_request, parse_datagram, parse_stream_message
from siptwin.sip.syntax import split_commas
from siptwin.sip.uri import SipUri, parse_uri, uri_equivalent
from siptwin.sip.validate import UasPolicy

from .torture import corpus_messages

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.builds(".".join, st.lists(label, min_size=1, max_size=4))
free_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)
user_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
param_name = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
param_value = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10))

sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    host=hosts,
    user=st.one_of(st.none(), user_text),
    password=st.none(),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    params=st.lists(st.tuples(param_name, param_value), max_size=3).map(tuple),
    headers=st.lists(st.tuples(param_name, free_text), max_size=2).map(tuple),
)


@given(sip_uris)
def test_sip_uri_round_trips(uri: SipUri) -> None:
    again = parse_uri(str(uri))
    assert again == uri
    assert uri_equivalent(again, uri)


@given(sip_uris, st.one_of(st.none(), free_text), st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True))
def test_name_addr_round_trips(uri: SipUri, display: str | None, tag: str) -> None:
    text = f'{"" if display is None else chr(34) + display.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)) + chr(34) + " "}<{uri}>;tag={tag}'
    addr = parse_name_addr(text, "From")
    assert addr.uri == uri
    assert addr.display_name == display
    assert addr.tag == tag
    assert parse_name_addr(str(addr), "From") == addr


def test_uri_comparison_follows_rfc3261_19_1_4() -> None:
    same = [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:[2001:db8::10]:5070", "sip:[2001:DB8:0::10]:5070"),
    ]
    different = [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com?subject=project%20x", "sip:alice@atlanta.com?subject=project"),
    ]
    for a, b in same:
        assert uri_equivalent(parse_uri(a), parse_uri(b)), (a, b)
    for a, b in different:
        assert not uri_equivalent(parse_uri(a), parse_uri(b)), (a, b)


def test_tel_and_unknown_schemes_stay_opaque() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert tel.scheme == "tel" and tel.number == "+1-201-555-0123"
    other = parse_uri("soap.beep://192.0.2.103:3002")
    assert other.scheme == "soap.beep" and str(other) == "soap.beep://192.0.2.103:3002"


def test_ipv6_reference_host() -> None:
    uri = parse_uri("sip:alice@[2001:db8::1]:5070;transport=tcp")
    assert uri.host == "[2001:db8::1]" and uri.port == 5070 and uri.transport == "tcp"


@given(st.lists(st.one_of(hosts, st.from_regex(r'"[a-z ,]{0,8}" <sip:[a-z]{1,5}@h>', fullmatch=True)), min_size=1, max_size=5))
def test_comma_split_respects_quotes_and_brackets(items: list[str]) -> None:
    assert split_commas(", ".join(items)) == items


@given(hosts, st.sampled_from(["UDP", "TCP", "TLS"]), st.one_of(st.none(), st.integers(1, 65535)),
       st.from_regex(r"z9hG4bK[A-Za-z0-9]{1,16}", fullmatch=True))
def test_via_round_trips(host: str, transport: str, port: int | None, branch: str) -> None:
    via = parse_via(f"SIP/2.0/{transport} {host}{'' if port is None else f':{port}'};branch={branch};rport")
    assert (via.host, via.port, via.transport, via.branch, via.wants_rport) == (host, port, transport, branch, True)
    assert parse_via(str(via)) == via


header_value = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=30
).map(lambda s: s.strip(" \t"))
extension_name = st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True)


@given(st.lists(st.tuples(extension_name, header_value), max_size=6), st.binary(max_size=64))
def test_message_round_trips(extra: list[tuple[str, str]], body: bytes) -> None:
    request = make_request(
        "INVITE",
        "sip:+14155550100@acme.sip.twilio.com",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKabc"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:+14155550100@acme.sip.twilio.com>"),
            ("Call-ID", "prop@example.com"),
            ("CSeq", "1 INVITE"),
            *extra,
        ],
        body,
    )
    data = request.to_bytes()
    for parsed in (parse_datagram(data), parse_stream_message(data)):
        assert parsed.start_line() == request.start_line()
        assert list(parsed.headers) == list(request.headers)
        assert parsed.body == body
        assert parsed.to_bytes() == data


@given(st.binary(max_size=512))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    _exercise(data)


def _exercise(data: bytes) -> None:
    admit(data, UasPolicy())
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return
    for view in ("vias", "from_", "to", "call_id", "cseq", "max_forwards", "contacts",
                 "routes", "record_routes", "content_type", "accept", "expires", "require"):
        with contextlib.suppress(SipParseError):
            getattr(msg, view)


def test_mutation_fuzz_of_the_corpus_never_crashes() -> None:
    """Bounded: 60 mutants of each torture message (byte flips, cuts, duplications)."""
    rng = random.Random(4475)
    alphabet = b" \t\r\n:;,<>\"\\%@=/?0123456789abcz"
    for seed_data in corpus_messages():
        for _ in range(60):
            data = bytearray(seed_data)
            for _ in range(rng.randint(1, 8)):
                op = rng.random()
                pos = rng.randrange(len(data) or 1)
                if op < 0.4 and data:
                    data[pos] = rng.choice(alphabet)
                elif op < 0.6:
                    del data[pos : pos + rng.randint(1, 20)]
                elif op < 0.8:
                    data[pos:pos] = data[pos : pos + rng.randint(1, 40)]
                else:
                    data[pos:pos] = bytes([rng.randrange(256)])
            _exercise(bytes(data))
            framer = StreamFramer()
            framer.feed(bytes(data))
            try:
                while (chunk := framer.next_message()) is not None:
                    _exercise(chunk)
            except SipParseError:
                pass


def test_stream_framer_cuts_messages_split_anywhere() -> None:
    one = make_request("OPTIONS", "sip:a@b", [("Via", "SIP/2.0/TCP h;branch=z9hG4bK1"),
                                               ("CSeq", "1 OPTIONS")], b"hello").to_bytes()
    two = make_request("OPTIONS", "sip:a@b", [("Via", "SIP/2.0/TCP h;branch=z9hG4bK2"),
                                               ("CSeq", "2 OPTIONS")]).to_bytes()
    stream = b"\r\n\r\n" + one + two
    for cut in range(1, len(stream)):
        framer = StreamFramer()
        got = []
        for part in (stream[:cut], stream[cut:]):
            framer.feed(part)
            while (msg := framer.next_message()) is not None:
                got.append(msg)
        assert got == [one, two]


def test_stream_framer_rejects_conflicting_content_length() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\nl: 13\r\n\r\n")
    with pytest.raises(SipParseError, match="Content-Length"):
        framer.next_message()


def test_stream_framer_bounds_message_size() -> None:
    framer = StreamFramer(max_message_size=1000)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"a" * 2000)
    with pytest.raises(SipParseError) as caught:
        framer.next_message()
    assert caught.value.status == 513


# The fast paths of the parser must read what the general code reads. Names as written
# (known, compact, odd case, unknown, malformed), separators and values that exercise folding,
# blanks around the colon and empty parts.
known_names = st.sampled_from(["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq",
                               "Contact", "Content-Length", "X-Custom", "via", "VIA", "Subject"])
field_values = st.text(st.sampled_from("ab ;=,:\t<>\"x1"), max_size=12)
known_lines = st.builds(lambda n, v: f"{n}:{v}", known_names, field_values)
odd_lines = st.one_of(
    st.builds(lambda n, sep, v: f"{n}{sep}{v}",
              st.sampled_from(["Na me", "", " Via", "Via ", "\tTo", "Unseen-Name"]),
              st.sampled_from([":", " :", ""]), field_values),
    st.builds(lambda lead, v: lead + v, st.sampled_from([" ", "\t"]), field_values),
)
# mostly lines the fast path takes, sometimes one it must leave to the general loop
field_lines = st.tuples(st.lists(known_lines, max_size=8), st.one_of(st.none(), odd_lines),
                        st.integers(0, 8)).map(
    lambda t: t[0] if t[1] is None else [*t[0][:t[2]], t[1], *t[0][t[2]:]])


@given(field_lines)
def test_known_fields_read_as_the_general_loop(lines: list[str]) -> None:
    from siptwin.sip import message

    # every well-formed name above is known once one message has carried it
    parse_datagram(b"OPTIONS sip:h SIP/2.0\r\nVia: a\r\nv: a\r\nFrom: a\r\nf: a\r\nTo: a\r\n"
                   b"t: a\r\nCall-ID: a\r\ni: a\r\nCSeq: a\r\nContact: a\r\nContent-Length: 0\r\n"
                   b"X-Custom: a\r\nvia: a\r\nVIA: a\r\nSubject: a\r\n\r\n")
    parse_datagram(b"OPTIONS sip:h SIP/2.0\r\nl: 0\r\n\r\n")
    lines = ["OPTIONS sip:h SIP/2.0", *lines]
    fast = message._known_fields(lines)
    if fast is None:
        return
    entries, index = fast
    assert (entries, index) == message._fields(lines, lines[0])
    # the index holds the entries themselves, each once, in order
    assert sum(len(found) for found in index.values()) == len(entries)
    for key, found in index.items():
        assert all(a is b for a, b in zip([e for e in entries if e[0] == key], found, strict=True))


plain_params = st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,8}", fullmatch=True),
                                  st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9\-.:\[\]~]{1,10}",
                                                                     fullmatch=True))),
                        max_size=4)


def _assert_plain_via_reads_as_general(transport: str, host: str, port: int | None,
                                       params: list[tuple[str, str | None]]) -> None:
    """parse_via's plain-Via shortcut gives what the general grammar gives: the same Via, or
    the same error."""
    from siptwin.sip.headers import _parse_via

    text = f"SIP/2.0/{transport} {host}{'' if port is None else f':{port}'}" + "".join(
        f";{k}" if v is None else f";{k}={v}" for k, v in params)
    outcomes = []
    for parse in (parse_via, _parse_via):
        try:
            outcomes.append(parse(text))
        except SipParseError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1]


@given(st.sampled_from(["UDP", "TCP", "TLS", "WS", "X"]), hosts,
       st.one_of(st.none(), st.integers(0, 99999)), plain_params)
def test_plain_via_reads_as_the_general_grammar(transport: str, host: str, port: int | None,
                                                params: list[tuple[str, str | None]]) -> None:
    _assert_plain_via_reads_as_general(transport, host, port, params)


# A request's UAS views are decoded by one inlined function (message.decode_uas_views); it
# must give what the view decoders give one by one, after the check for a Via: the same
# views, or the same first error.
# Headers present, missing or repeated, long or compact names, folded or padded values.
def _uas_header(name: str, compact: str, values: list[str]) -> st.SearchStrategy[list[str]]:
    # mostly one line with the first (valid) value, so that later headers get their turn
    value = st.one_of(st.just(values[0]), st.just(values[0]), st.sampled_from(values))
    one = st.builds(lambda n, pad, v: f"{n}:{pad}{v}", st.sampled_from([name, compact, name.upper()]),
                    st.sampled_from(["", " ", "\t ", "  "]), value)
    return st.one_of(st.lists(one, min_size=1, max_size=1), st.lists(one, max_size=2))


uas_headers = st.tuples(
    _uas_header("Via", "v", ["SIP/2.0/UDP h:5060;branch=z9hG4bK1", "SIP/2.0/UDP h;rport;branch=z9hG4bK2",
                             "SIP/2.0/UDP a, SIP/2.0/TCP b;branch=z9hG4bK3", "SIP/2.0/UDP h;branch=z9hG4bK",
                             "bogus", "SIP / 2.0 / UDP h ; branch = z9hG4bK4"]),
    _uas_header("From", "f", ["<sip:a@h>;tag=1", "sip:a@h;tag=2", "\"A\" <sip:a@h>", "<sip:a@h", ""]),
    _uas_header("To", "t", ["<sip:b@h>", "<sip:b@h>;tag=3", "b <sip:b@h>", "<sip: b@h>"]),
    _uas_header("Call-ID", "i", ["1@h", "a b", " 2@h ", ""]),
    _uas_header("CSeq", "CSeq", ["1 INVITE", "2 BYE", "x INVITE", "99999999999 ACK"]),
    _uas_header("Max-Forwards", "Max-Forwards", ["70", "0", "256", "x"]),
    _uas_header("Contact", "m", ["<sip:c@h>", "*", "sip:c@h, <sip:d@h>", "*, <sip:c@h>", "<sip:c@h"]),
    _uas_header("Content-Type", "c", ["application/sdp", "text/plain;charset=x", "bad"]),
    _uas_header("Expires", "Expires", ["60", "x", "99999999999"]),
    _uas_header("Require", "Require", ["100rel", "a, b", "bad tag", ""]),
).map(lambda groups: [line for group in groups for line in group])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(uas_headers, st.randoms(use_true_random=False), st.booleans())
def test_uas_views_decode_as_the_view_decoders(lines: list[str], rng: random.Random,
                                               fold: bool) -> None:
    from siptwin.sip.message import UAS_VIEWS, decode_uas_views

    rng.shuffle(lines)
    if fold and lines:  # fold the first header's value onto a continuation line
        name, _, value = lines[0].partition(":")
        lines[0] = f"{name}:\r\n {value.strip()}" if value.strip() else lines[0]
    data = ("INVITE sip:b@h SIP/2.0\r\n" + "".join(line + "\r\n" for line in lines)
            + "Content-Length: 0\r\n\r\n").encode()
    outcomes = []
    for decode in ("inlined", "one by one"):
        try:
            message = parse_datagram(data)
        except SipParseError as err:
            outcomes.append(("unparsable", err.reason))
            continue
        try:
            if decode == "inlined":
                decode_uas_views(message)
            else:
                if not message.headers.get_all("Via"):
                    raise SipParseError("Missing Via header")  # (decode_uas_views checks first)
                message.decode_views(UAS_VIEWS)
                _ = message.require
            outcomes.append(("views", dict(message._views)))
        except SipParseError as err:
            outcomes.append(("error", err.reason, dict(message._views)))
    assert outcomes[0] == outcomes[1]


def test_uas_views_of_a_request_the_fast_paths_decline() -> None:
    """Compact names, a folded value, two Via lines (one with two values), blanks around
    colons and values: the general parser reads them and the views come out whole."""
    from siptwin.sip.message import decode_uas_views

    message = parse_datagram(
        b"INVITE sip:b@h SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a:5060;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2\r\n"
        b"Via :  SIP / 2.0 / UDP c ; branch = z9hG4bK3\r\n"
        b"f: \"A\" <sip:a@h>;tag=1\r\nt:\t<sip:b@h>\r\ni: 1@h \r\n"
        b"CSeq: 1\r\n INVITE\r\nm: <sip:c@h>, sip:d@h\r\nMax-Forwards:  69\r\n"
        b"Content-Length: 0\r\n\r\n")
    views = decode_uas_views(message)
    assert [(v.host, v.transport, v.branch) for v in views["via"]] == [
        ("a", "UDP", "z9hG4bK1"), ("b", "TCP", "z9hG4bK2"), ("c", "UDP", "z9hG4bK3")]
    assert views["from"].display_name == "A" and views["from"].tag == "1"
    assert views["to"].tag is None and views["call-id"] == "1@h"
    assert (views["cseq"].number, views["cseq"].method) == (1, "INVITE")
    assert [str(c.address.uri) for c in views["contact"]] == ["sip:c@h", "sip:d@h"]
    assert views["max-forwards"] == 69 and views["content-type"] is None
    assert views["tags:require"] == []


branch_params = st.lists(st.tuples(st.sampled_from(["branch", "Branch", "BRANCH", "rport", "x"]),
                                   st.sampled_from([None, "z9hG4bK", "z9hG4bKab", "1", "z9hG4bK.x"])),
                         max_size=3)


@given(st.sampled_from(["UDP", "TCP"]), hosts, st.one_of(st.none(), st.integers(0, 70000)),
       branch_params)
def test_plain_via_checks_its_branch_as_the_general_grammar(
        transport: str, host: str, port: int | None, params: list[tuple[str, str | None]]) -> None:
    _assert_plain_via_reads_as_general(transport, host, port, params)


@given(st.lists(st.sampled_from(["0", "4", "10", " 4 ", "4x", "99999999999", "٣", "-1", ""]),
                min_size=0, max_size=2),
       st.binary(max_size=12), st.booleans())
def test_content_length_frames_the_body_as_specified(lengths: list[str], body: bytes,
                                                     datagram: bool) -> None:
    """The single-Content-Length shortcut of the framing gives what RFC 3261 §18.3 asks
    (and the rest of _frame_body says), whatever the value."""
    head = "OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n" + "".join(
        f"Content-Length: {v}\r\n" for v in lengths)
    data = head.encode() + b"\r\n" + body
    try:
        got: bytes | str = parse_datagram(data).body if datagram else parse_stream_message(data).body
    except SipParseError as err:
        got = err.reason
    values = [v.strip() for v in lengths]
    if not values:
        expected: bytes | str = body if datagram else b""
    elif len(values) > 1:
        expected = ("Conflicting Content-Length headers" if len(set(values)) > 1
                    else "Multiple Content-Length headers")
    elif not (values[0].isdigit() and values[0].isascii() and len(values[0]) <= 10):
        expected = "Malformed Content-Length"
    elif int(values[0]) > len(body):
        expected = "Content-Length larger than the message body"
    else:
        expected = body[: int(values[0])]
    assert got == expected


@given(uas_headers, st.lists(st.tuples(st.sampled_from(["Server", "Contact", "Record-Route",
                                                        "X-Twilio-Error", "Content-Length", "l",
                                                        "Allow", "X: Y", "A:B"]),
                                       st.sampled_from(["a", "b, c", "", " d ", "e\r\nf: g",
                                                        "h: i"])), max_size=4),
       st.sampled_from([100, 180, 200, 407]), st.one_of(st.none(), st.just("t1")),
       st.binary(max_size=4))
def test_a_response_is_the_response_its_fields_make(
        lines: list[str], extra: list[tuple[str, str]], status: int, to_tag: str | None,
        body: bytes) -> None:
    """make_response writes the response's header section as packed text: it must be the
    response that adding its fields one by one makes - the same fields, look-ups and bytes."""
    from siptwin.sip.headers import Headers
    from siptwin.sip.message import make_response

    data = ("INVITE sip:b@h SIP/2.0\r\n" + "".join(line + "\r\n" for line in lines)
            + "Content-Length: 0\r\n\r\n").encode()
    try:
        request = parse_datagram(data)
    except SipParseError:
        return
    response = make_response(request, status, to_tag=to_tag, extra=extra, body=body)
    fields = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.get_all(name):
            if name == "To" and to_tag and status != 100 and ";tag=" not in value.replace(" ", ""):
                value = f"{value};tag={to_tag}"
            fields.add(name, value)
    for name, value in [*extra, ("Content-Length", str(len(body)))]:
        fields.add(name, value)
    assert response.to_bytes() == (f"SIP/2.0 {status} {response.reason}\r\n{fields.to_text()}"
                                   "\r\n").encode("utf-8", "surrogateescape") + body
    for key in ("via", "from", "to", "call-id", "cseq", "content-length", "x", "a:b", "server"):
        assert response.headers.by_key(key) == fields.by_key(key)
    assert list(response.headers) == list(fields)


# From and To values as callers write them, and ones the grammar refuses: a tag (or none,
# or a malformed one) after any mix of display name, URI form and parameters.
name_addr_texts = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(["", "Alice ", "sipp ", '"A;tag=b" ', '"A \\" B" ', '"open ', "two words",
                     "bad@word ", '"Q"']),
    st.sampled_from(["<sip:a@h>", "<sip:a@h:5061>", "<sip:a@h;tag=u>", "sip:a@h", "sip:a@h;x",
                     "<sip:a@h", "sip:a@h?x", "<sip: a@h>", "tel:+1", "", "<sip:a@h>x",
                     "<sips:[::1]:5>", "sip:sipp@127.0.0.1:5061", "sip:a,b@h", "sip:a@h>",
                     "sip:a\"b@h", "sip a@h", "h"]),
    st.lists(st.tuples(st.sampled_from([";", " ;", "; ", ";\t"]),
                       st.sampled_from(["x", "tag", "TAG", "lr", ""]),
                       st.sampled_from(["", "=1", "= 2", '="q;tag=z"', "=", '="open'])),
             max_size=3).map(lambda ps: "".join(a + b + c for a, b, c in ps)),
    st.one_of(st.just(""), st.from_regex(r";tag=[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True),
              st.sampled_from([";tag=", ";tag=a b", ';tag="x"', ";TAG=x", ";tag=x;tag=y",
                               ";tag=x>", ";tag=x,y", " ;tag=x", ";tag=[::1]"])),
    st.sampled_from(["", " ", ","]),
)


@settings(max_examples=500)
@given(name_addr_texts, st.sampled_from(["From", "To", "Contact"]))
def test_tagged_name_addr_reads_as_the_general_grammar(text: str, what: str) -> None:
    """A value ending with a plain tag is decoded from its untagged head (shared by the calls
    of a caller) plus the tag: the same NameAddr as the general grammar, or the same error."""
    from siptwin.sip.address import _decode_name_addr, _parse_name_addr, _read_name_addr

    outcomes = []
    for decode in (lambda: _decode_name_addr((text, what)), lambda: _parse_name_addr(text, what),
                   lambda: _read_name_addr(text, what)):
        try:
            outcomes.append(decode())
        except SipParseError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1] == outcomes[2]


@settings(max_examples=500)
@given(st.sampled_from(["sip:", "tel:", "", " sip:"]),
       st.text(st.sampled_from('sipa@h.:15;,?= \t<>"\\x'), max_size=16))
def test_plain_addr_spec_reads_as_the_general_grammar(scheme: str, rest: str) -> None:
    """An addr-spec taken whole by _parse_name_addr (no parameters, nothing to refuse) is
    the NameAddr the general grammar reads, and anything else gets its value or error."""
    from siptwin.sip.address import _parse_name_addr, _read_name_addr

    text = scheme + rest
    outcomes = []
    for decode in (_parse_name_addr, _read_name_addr):
        try:
            outcomes.append(decode(text, "Contact"))
        except SipParseError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1]


# sip URIs as callers write them and ones the grammar refuses or reads with escapes,
# passwords, IPv6 references, headers or empty parameter values.
sip_uri_rests = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["", "a@", "sipp@", "+1-555@", "a:pw@", "a%40b@", "a;b@", "@", "a b@", "é@"]),
    st.sampled_from(["h", "127.0.0.1", "x.sip.twilio.com", "h.", "-h", "[::1]", "", "h_1", "٣"]),
    st.sampled_from(["", ":5061", ":0", ":65535", ":65536", ":99999", ":123456", ":", ":x", ":٣"]),
    st.lists(st.sampled_from([";transport=UDP", ";lr", ";maddr=[::1]", ";x=", ";=y", ";",
                              ";a%20=b", ";a=b=c", ";user=phone", ";t=a/b:c"]),
             max_size=3).map("".join),
    st.sampled_from(["", "?h=v", "?", ">", " ", "\r"]),
)


@settings(max_examples=500)
@given(st.sampled_from(["sip", "sips"]), sip_uri_rests)
def test_plain_sip_uri_reads_as_the_general_grammar(scheme: str, rest: str) -> None:
    """_parse_sip's one-match shortcut gives what the general grammar gives: the same URI
    (its text included), or the same error."""
    from siptwin.sip.uri import _parse_sip, _read_sip

    outcomes = []
    for parse in (_parse_sip, _read_sip):
        try:
            uri = parse(scheme, rest)
            outcomes.append((uri, str(uri)))
        except SipParseError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1]


via_routing_params = st.lists(st.sampled_from(
    [";rport", ";RPORT", ";rport=7", ";received=10.0.0.9", ";maddr=239.1.1.1", ';maddr="10.1.1.1"',
     ";maddr=", ";branch=z9hG4bK77", ";x=1", " ; rport"]), max_size=4)


@settings(max_examples=400)
@given(st.sampled_from(["SIP/2.0/UDP 10.0.0.1", "SIP/2.0/UDP 10.0.0.1:5070", "SIP/2.0/TCP h.example",
                        "SIP/2.0/UDP [::1]:5062", "SIP / 2.0 / UDP 10.0.0.2"]),
       via_routing_params, st.booleans(), st.sampled_from(["udp", "udp", "tcp", "tls"]),
       st.sampled_from(["10.0.0.1", "127.0.0.5", "::1", ""]), st.sampled_from([5060, 40000, 0, -1]))
def test_stamped_hop_is_the_stamp_then_the_response_hop(
        sent_by: str, params: list[str], second_via: bool, transport: str, host: str,
        port: int) -> None:
    """stamped_hop gives the Via and the hop that stamp_received then response_hop give."""
    from siptwin.sip.routing import response_hop, stamp_received, stamped_hop

    via = sent_by + ";branch=z9hG4bK1" + "".join(params) + (", SIP/2.0/UDP b" if second_via else "")
    data = (f"OPTIONS sip:h SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
            "Call-ID: 1@h\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    outcomes = []
    for steps in ("one", "two"):
        request = parse_datagram(data)
        try:
            if steps == "one":
                hop = stamped_hop(request, transport, host, port)
            else:
                stamp_received(request, host, port)
                hop = response_hop(request, transport, host, port)
        except SipParseError as err:
            outcomes.append(err.reason)
            continue
        outcomes.append((hop, request.headers.get_all("Via"), request.vias))
    assert outcomes[0] == outcomes[1]


@given(st.text(st.sampled_from('ab "\\;,<>'), max_size=16), st.data())
def test_quoted_string_reads_as_the_character_loop(text: str, data: st.DataObject) -> None:
    """read_quoted's slice for a quoted-string without escapes is what the character loop
    reads; a string with escapes, or unterminated, goes to the loop itself."""
    from siptwin.sip.syntax import _read_escaped, read_quoted

    text = '"' + text
    start = data.draw(st.sampled_from([i for i, ch in enumerate(text) if ch == '"']))
    outcomes = []
    for read in (read_quoted, _read_escaped):
        try:
            outcomes.append(read(text, start))
        except SipParseError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1]


@given(st.text(st.sampled_from('ab:@ \t\r\n<>";'), max_size=12))
def test_uri_refuses_the_characters_no_uri_holds(rest: str) -> None:
    from siptwin.sip.uri import _NOT_IN_URIS

    assert (_NOT_IN_URIS.search(rest) is not None) == any(c in rest for c in ' \t\r\n<>"')


@given(st.text(st.sampled_from('ab ,;"<>\t'), max_size=12), st.text(st.sampled_from("xy;="), max_size=6))
def test_first_value_replaced_as_split_and_joined(line: str, value: str) -> None:
    """replace_first_value writes a line holding one value (no comma) directly: the line the
    split at top-level commas and the join give."""
    from siptwin.sip.headers import Headers

    try:
        expected = ", ".join([value, *split_commas(line)[1:]])
    except SipParseError as err:  # an unterminated quote after a comma
        expected = err.reason
    headers = Headers([("Via", line), ("Via", "second")])
    try:
        headers.replace_first_value("Via", value)
        got = headers.get_all("Via")[0]
    except SipParseError as err:
        got = err.reason
    assert got == expected
    assert headers.get_all("Via")[1] == "second"
