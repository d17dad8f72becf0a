"""The overload guard's byte readers (regions/overload.py) against the full parser.

A shed call is recognised from its bytes, before any parse: its top Via branch (the INVITE's,
and the ACK of its 503) and whether it is a new call. Whatever those readers answer must be
what the full parse of the same bytes says, or None (unsure: the parse decides); and for the
plain lines callers send they must answer. Via lines long or compact, in any case, with
blanks around the colon, the semicolons and the equals sign; several Via lines or values;
quoted parameters that look like a branch; folded lines; To tags; credentials; a Via in the
body.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siptwin.regions.overload import ack_branch, new_call_branch, stateless_refusal, top_via_branch
from siptwin.sip.errors import SipParseError
from siptwin.sip.message import Request, parse_datagram

token = st.from_regex(r"[A-Za-z0-9.!%*_+`'~-]{1,12}", fullmatch=True)
branches = st.one_of(token.map(lambda t: "z9hG4bK" + t), token,
                     st.sampled_from(["z9hG4bK", "Z9HG4BK-Ab", "z9hG4bK-1 x", ""]))
blank = st.sampled_from(["", "", " ", "\t", "  "])


@st.composite
def via_values(draw: st.DrawFn) -> tuple[str, bool]:
    """A Via value, and whether it is plain: one value, a valid branch, nothing quoted or
    folded before it - what a reader from bytes must read."""
    sent = draw(st.sampled_from(["SIP/2.0/UDP", "SIP/2.0/TCP", "SIP / 2.0 / UDP", "sip/2.0/udp"]))
    host = draw(st.sampled_from(["127.0.0.1", "10.0.0.1:5070", "pbx.example", "[::1]:5060"]))
    params = draw(st.lists(st.sampled_from(
        ["rport", "rport=5", "received=10.1.1.1", "maddr=10.2.2.2", "ttl=1", 'x="a;branch=z9hG4bKfake"',
         'x="a,b"', "lr", "BRANCHX=1", "xbranch=z9hG4bKno"]), max_size=3))
    branch = draw(st.one_of(st.none(), branches))
    plain = branch is not None and branch.startswith("z9hG4bK") and len(branch) > 7 \
        and " " not in branch and not any('"' in p for p in params)
    if branch is not None:
        name = draw(st.sampled_from(["branch", "Branch", "BRANCH"]))
        spaced = f"{draw(blank)}{name}{draw(blank)}={draw(blank)}{branch}"
        params.insert(draw(st.integers(0, len(params))), spaced)
        if any('"' in p for p in params[:params.index(spaced)]):
            plain = False
    value = sent + " " + host + "".join(f"{draw(blank)};{p}" for p in params)
    second = draw(st.sampled_from(["", "", ", SIP/2.0/UDP proxy;branch=z9hG4bKsecond"]))
    if draw(st.booleans()) and second == "":
        first, _, rest = value.partition(" ")
        value = f"SIP/2.0/UDP other, {value}"  # the top value has no branch of its own
        plain = False
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(1, len(value) - 1))
        value = value[:at] + "\r\n " + value[at:]  # folded
        plain = False
    return value + second, plain


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, bool]:
    """An INVITE or ACK and whether its top Via is plain."""
    method = draw(st.sampled_from(["INVITE", "ACK"]))
    top, plain = draw(via_values())
    via_names = st.sampled_from(["Via", "via", "VIA", "v", "V"])
    lines = [f"{draw(via_names)}{draw(blank)}:{draw(blank)}{top}"]
    for _ in range(draw(st.integers(0, 2))):
        lines.append(f"{draw(via_names)}: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK-below")
    to = draw(st.sampled_from(["<sip:1000@h>", "<sip:1000@h>;tag=9", "<sip:1000@h>;TAG=9",
                               "Montague <sip:m@h>", "<sip:1000@h"]))
    others = [f"{draw(st.sampled_from(['To', 't', 'TO']))}{draw(blank)}: {to}",
              "From: <sip:a@h>;tag=f1", "Call-ID: c1@h", f"CSeq: 1 {method}", "Max-Forwards: 70"]
    others += draw(st.lists(st.sampled_from(
        ["To: <sip:2@h>", 'Proxy-Authorization: Digest username="a"', "authorization : Digest x",
         "Subject: folded\r\n Via: SIP/2.0/UDP fake;branch=z9hG4bKfold",
         "X-Via: SIP/2.0/UDP fake;branch=z9hG4bKx", "Vias: SIP/2.0/UDP fake;branch=z9hG4bKs"]),
        max_size=2))
    rng = random.Random(draw(st.integers(0, 2**16)))
    if rng.random() < 0.5:  # the Via lines are not always first; they stay in their order
        at = rng.randint(0, len(others))
        lines = others[:at] + lines + others[at:]
    else:
        lines += others
    body = draw(st.sampled_from(["", "v=0\r\nVia: SIP/2.0/UDP body;branch=z9hG4bKbody\r\n"]))
    head = f"{method} sip:1000@h SIP/2.0\r\n" + "".join(line + "\r\n" for line in lines)
    return (head + f"Content-Length: {len(body)}\r\n\r\n{body}").encode(), plain


def _parsed(data: bytes) -> Request | None:
    try:
        message = parse_datagram(data)
        if isinstance(message, Request):
            _ = message.top_via, message.to  # views decode lazily: their errors too
            return message
    except SipParseError:
        pass
    return None


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_the_branch_read_from_bytes_is_the_parsers(case: tuple[bytes, bool]) -> None:
    data, plain = case
    request = _parsed(data)
    end = data.find(b"\r\n\r\n")
    branch = top_via_branch(data, end)
    if request is None:
        return  # the full parse refuses it: anything but a crash will do
    expected = request.top_via.branch
    if branch is not None:
        assert expected is not None and branch == expected.lower().encode()
    if plain:
        assert branch is not None
    if request.method == "ACK":
        assert ack_branch(data) == branch
        assert new_call_branch(data) is None
    else:
        assert ack_branch(data) is None
        new = new_call_branch(data)
        if new is not None:
            assert new == branch
            assert request.to.tag is None
            assert request.headers.get("Authorization") is None
            assert request.headers.get("Proxy-Authorization") is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_a_refusal_built_from_bytes_answers_the_request(case: tuple[bytes, bool]) -> None:
    data, _ = case
    request = _parsed(data)
    refusal = stateless_refusal(data, "127.0.0.1", 5060, b"SIP/2.0 503 Service Unavailable\r\n",
                                b"Retry-After: 1\r\n", b"1234_ab")
    if refusal is None or request is None:
        return
    response = parse_datagram(refusal)
    assert response.status == 503
    assert response.to.tag == "1234_ab" or request.to.tag is not None
    top, asked = response.top_via, request.top_via
    assert (top.host, top.port, top.branch) == (asked.host, asked.port, asked.branch)
    if asked.rport is not None or "rport" in str(asked):  # RFC 3581: stamped with the source
        assert (top.received, top.rport) == ("127.0.0.1", 5060)
    assert [str(v) for v in response.vias[1:]] == [str(v) for v in request.vias[1:]]
    assert response.call_id == request.call_id and response.cseq == request.cseq
    assert response.from_.tag == request.from_.tag


def test_hostile_bytes_get_an_answer_or_none_never_a_crash() -> None:
    rng = random.Random(18)
    base = (b"INVITE sip:1000@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport"
            b"\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1000@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 0\r\n\r\n")
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.choice(b"\r\n \t;,=\":\x00\xff")
        data = bytes(data)
        for read in (new_call_branch, ack_branch):
            assert read(data) is None or isinstance(read(data), bytes)
        refusal = stateless_refusal(data, "127.0.0.1", 5060, b"SIP/2.0 503 X\r\n", b"", b"t")
        assert refusal is None or refusal.startswith(b"SIP/2.0 503 X\r\n")
