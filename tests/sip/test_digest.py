"""Digest authentication: RFC worked examples, the SIP 407 round trip, nonces, parsing."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siptwin.sip.digest import (
    Challenge,
    Credentials,
    DigestError,
    DigestSyntaxError,
    NonceCountTracker,
    NonceIssuer,
    NonceStatus,
    VerifyFailure,
    answer_challenge,
    compute_ha1,
    compute_response,
    make_challenge,
    make_opaque,
    nonce_context,
    parse_challenge,
    parse_challenges,
    parse_credentials,
    verify,
)

# RFC 2617 §3.5.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1 (note the lower-case "of" in its password).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

TWILIO_REALM = "sip.twilio.com"
SECRET = b"0123456789abcdef0123456789abcdef"
REQUEST_URI = "sip:1001@acme.sip.us1.twilio.com"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# --- RFC worked examples -----------------------------------------------------------------


def test_rfc2617_example_credentials_verify_from_stored_ha1() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    result = verify(parse_credentials(RFC2617_CREDENTIALS), "GET", ha1)
    assert result.ok, result


def test_rfc2617_example_is_reproduced_by_the_client() -> None:
    challenge = parse_challenge(RFC2617_CHALLENGE)
    credentials = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.qop == "auth"
    assert credentials.get("nc") == "00000001"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_responses(algorithm: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    credentials = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=RFC7616_CNONCE
    )
    assert credentials.response == RFC7616_RESPONSES[algorithm]
    assert credentials.algorithm == algorithm
    assert "algorithm=" + algorithm in credentials.to_header()

    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    assert verify(credentials, "GET", ha1, expected_uri="/dir/index.html").ok


# --- SIP challenge / answer --------------------------------------------------------------


def issue_twilio_challenge(now: float = 1000.0, call_id: str = "c1@pbx") -> Challenge:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(now, TWILIO_REALM, nonce_context(call_id, "203.0.113.7"))
    return make_challenge(TWILIO_REALM, nonce, make_opaque())


def test_twilio_style_challenge_has_no_algorithm_and_quotes_qop() -> None:
    challenge = issue_twilio_challenge()
    header = challenge.to_header()
    assert header.startswith('Digest realm="sip.twilio.com", qop="auth", nonce="')
    assert "algorithm" not in header
    assert "stale" not in header
    assert len(challenge.nonce or "") == 48
    assert len(challenge.opaque or "") == 32
    int(challenge.opaque or "", 16)


def test_sip_407_round_trip_verifies_and_is_rfc2617_md5() -> None:
    challenge = parse_challenge(issue_twilio_challenge().to_header())
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "alice", "Harbour7Lights")
    received = parse_credentials(credentials.to_header())
    assert "algorithm" not in received
    ha1 = compute_ha1("alice", TWILIO_REALM, "Harbour7Lights")
    assert ha1 == md5_hex("alice:sip.twilio.com:Harbour7Lights")
    # The spec's formula written out by hand, independent of the module.
    ha2 = md5_hex(f"INVITE:{REQUEST_URI}")
    expected = md5_hex(f"{ha1}:{received.nonce}:{received.get('nc')}:{received.cnonce}:auth:{ha2}")
    assert received.response == expected
    result = verify(
        received, "INVITE", ha1, expected_uri=REQUEST_URI, expected_opaque=challenge.opaque
    )
    assert result.ok and result.reason == "ok"


def test_wrong_password_is_a_bad_response() -> None:
    challenge = issue_twilio_challenge()
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "alice", "Wr0ngPassword9")
    result = verify(credentials, "INVITE", compute_ha1("alice", TWILIO_REALM, "Harbour7Lights"))
    assert result.failure is VerifyFailure.BAD_RESPONSE
    assert result.reason == "bad-response"


def test_response_for_another_method_does_not_verify() -> None:
    credentials = answer_challenge(issue_twilio_challenge(), "INVITE", REQUEST_URI, "a", "pw")
    assert not verify(credentials, "REGISTER", compute_ha1("a", TWILIO_REALM, "pw")).ok


def test_uri_check_is_optional_and_exact() -> None:
    credentials = answer_challenge(
        issue_twilio_challenge(), "INVITE", "sip:10.0.0.1:5060", "a", "pw"
    )
    ha1 = compute_ha1("a", TWILIO_REALM, "pw")
    assert verify(credentials, "INVITE", ha1).ok  # SIPp-style uri, check not requested
    result = verify(credentials, "INVITE", ha1, expected_uri=REQUEST_URI)
    assert result.failure is VerifyFailure.URI_MISMATCH


def test_opaque_must_be_echoed_when_checked() -> None:
    credentials = answer_challenge(issue_twilio_challenge(), "INVITE", REQUEST_URI, "a", "pw")
    result = verify(
        credentials, "INVITE", compute_ha1("a", TWILIO_REALM, "pw"), expected_opaque="0" * 32
    )
    assert result.failure is VerifyFailure.OPAQUE_MISMATCH


def test_md5_sess_uses_session_key_from_stored_ha1() -> None:
    challenge = make_challenge(TWILIO_REALM, "abc123", algorithm="MD5-sess")
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "bob", "pw", cnonce="c0ffee")
    stored = md5_hex("bob:sip.twilio.com:pw")
    session_key = md5_hex(f"{stored}:abc123:c0ffee")
    expected = md5_hex(
        f"{session_key}:abc123:00000001:c0ffee:auth:{md5_hex('INVITE:' + REQUEST_URI)}"
    )
    assert credentials.response == expected
    assert credentials.algorithm == "MD5-sess"
    assert verify(credentials, "INVITE", compute_ha1("bob", TWILIO_REALM, "pw", "MD5-sess")).ok


@pytest.mark.parametrize("algorithm", ["SHA-256", "SHA-256-sess", "SHA-512-256"])
def test_sha_family_round_trips(algorithm: str) -> None:
    challenge = make_challenge(TWILIO_REALM, "n0nce", algorithm=algorithm)
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "carol", "pw")
    assert len(credentials.response or "") == 64
    ha1 = compute_ha1("carol", TWILIO_REALM, "pw", algorithm)
    assert verify(parse_credentials(credentials.to_header()), "INVITE", ha1).ok


def test_md5_ha1_offered_for_sha256_credentials_is_reported() -> None:
    challenge = make_challenge(TWILIO_REALM, "n0nce", algorithm="SHA-256")
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "carol", "pw")
    result = verify(credentials, "INVITE", compute_ha1("carol", TWILIO_REALM, "pw"))
    assert result.failure is VerifyFailure.HA1_MISMATCH


def test_auth_int_covers_the_body() -> None:
    challenge = make_challenge(TWILIO_REALM, "n0nce", qop="auth-int")
    body = b"v=0\r\n"
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "a", "pw", body=body)
    ha1 = compute_ha1("a", TWILIO_REALM, "pw")
    assert credentials.qop == "auth-int"
    assert verify(credentials, "INVITE", ha1, body=body).ok
    assert verify(credentials, "INVITE", ha1, body=b"v=1\r\n").failure is VerifyFailure.BAD_RESPONSE


def test_legacy_rfc2069_response_without_qop() -> None:
    challenge = make_challenge(TWILIO_REALM, "n0nce", qop=None)
    credentials = answer_challenge(challenge, "INVITE", REQUEST_URI, "a", "pw")
    assert credentials.qop is None and credentials.cnonce is None and "nc" not in credentials
    ha1 = compute_ha1("a", TWILIO_REALM, "pw")
    assert credentials.response == md5_hex(f"{ha1}:n0nce:{md5_hex('INVITE:' + REQUEST_URI)}")
    assert verify(credentials, "INVITE", ha1).ok
    strict = verify(credentials, "INVITE", ha1, require_qop=True)
    assert strict.failure is VerifyFailure.UNSUPPORTED_QOP


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        ('Digest username="a", realm="r", nonce="n", uri="u"', VerifyFailure.MISSING_PARAM),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=00000001',
            VerifyFailure.MISSING_PARAM,
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, '
            'cnonce="c", nc=1',
            VerifyFailure.MALFORMED_PARAM,
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-1',
            VerifyFailure.UNSUPPORTED_ALGORITHM,
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth-conf, '
            'cnonce="c", nc=00000001',
            VerifyFailure.UNSUPPORTED_QOP,
        ),
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", VerifyFailure.NOT_DIGEST),
    ],
)
def test_unverifiable_credentials_name_the_reason(header: str, failure: VerifyFailure) -> None:
    result = verify(parse_credentials(header), "INVITE", md5_hex("a:r:pw"))
    assert result.failure is failure
    assert result.reason == failure.value
    assert result.detail


def test_answering_an_unknown_algorithm_is_refused() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1')
    with pytest.raises(DigestError, match="SHA-1"):
        answer_challenge(challenge, "INVITE", REQUEST_URI, "a", "pw")


# --- Nonces ------------------------------------------------------------------------------


def test_nonce_is_48_base64url_characters() -> None:
    nonce = NonceIssuer(SECRET).issue(1_700_000_000.0, TWILIO_REALM, b"ctx")
    assert len(nonce) == 48
    assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_nonce_is_valid_within_lifetime_then_stale() -> None:
    issuer = NonceIssuer(SECRET, lifetime=300.0)
    nonce = issuer.issue(1000.0, TWILIO_REALM, b"ctx")
    assert issuer.check(nonce, 1000.0, TWILIO_REALM, b"ctx") is NonceStatus.VALID
    assert issuer.check(nonce, 1300.0, TWILIO_REALM, b"ctx") is NonceStatus.VALID
    assert issuer.check(nonce, 1300.5, TWILIO_REALM, b"ctx") is NonceStatus.STALE


def test_nonce_bound_to_call_id_and_source_is_refused_elsewhere() -> None:
    issuer = NonceIssuer(SECRET)
    context = nonce_context("call-1@pbx", "203.0.113.7")
    nonce = issuer.issue(1000.0, TWILIO_REALM, context)
    assert issuer.check(nonce, 1001.0, TWILIO_REALM, context) is NonceStatus.VALID
    other_call = nonce_context("call-2@pbx", "203.0.113.7")
    other_source = nonce_context("call-1@pbx", "198.51.100.9")
    assert issuer.check(nonce, 1001.0, TWILIO_REALM, other_call) is NonceStatus.INVALID
    assert issuer.check(nonce, 1001.0, TWILIO_REALM, other_source) is NonceStatus.INVALID
    assert issuer.check(nonce, 1001.0, "other.realm", context) is NonceStatus.INVALID
    # Even once expired, a nonce from another context is invalid, never stale.
    assert issuer.check(nonce, 99_999.0, TWILIO_REALM, other_call) is NonceStatus.INVALID


def test_context_encoding_is_unambiguous() -> None:
    assert nonce_context("ab", "c") != nonce_context("a", "bc")


def test_forged_or_garbled_nonces_are_invalid() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(1000.0, TWILIO_REALM, b"ctx")
    tampered = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    foreign = NonceIssuer(b"another secret of 32 bytes......").issue(1000.0, TWILIO_REALM, b"ctx")
    for candidate in (tampered, foreign, "", "short", nonce + "A", "!" * 48, "=" * 48):
        assert issuer.check(candidate, 1000.0, TWILIO_REALM, b"ctx") is NonceStatus.INVALID


def test_nonce_from_the_future_is_invalid() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(2000.0, TWILIO_REALM, b"ctx")
    assert issuer.check(nonce, 1000.0, TWILIO_REALM, b"ctx") is NonceStatus.INVALID


def test_two_challenges_in_the_same_instant_get_distinct_nonces() -> None:
    issuer = NonceIssuer(SECRET)
    assert issuer.issue(5.0, TWILIO_REALM, b"c") != issuer.issue(5.0, TWILIO_REALM, b"c")
    fixed = bytes(6)
    assert issuer.issue(5.0, TWILIO_REALM, b"c", salt=fixed) == issuer.issue(
        5.0, TWILIO_REALM, b"c", salt=fixed
    )


def test_stale_challenge_says_stale_true() -> None:
    header = make_challenge(TWILIO_REALM, "n", stale=True).to_header()
    assert "stale=true" in header
    assert parse_challenge(header).stale


# --- Nonce-count replay ------------------------------------------------------------------


def test_replayed_nonce_count_is_refused() -> None:
    tracker = NonceCountTracker()
    assert tracker.accept("n1", 1)
    assert not tracker.accept("n1", 1)  # the same Proxy-Authorization replayed
    assert tracker.accept("n1", 2)
    assert not tracker.accept("n1", 2)
    assert not tracker.accept("n1", 1)  # going backwards
    assert tracker.accept("n2", 1)  # counts are per nonce


def test_replayed_proxy_authorization_end_to_end() -> None:
    issuer = NonceIssuer(SECRET)
    tracker = NonceCountTracker()
    context = nonce_context("c1@pbx", "203.0.113.7")
    challenge = make_challenge(TWILIO_REALM, issuer.issue(10.0, TWILIO_REALM, context))
    header = answer_challenge(challenge, "INVITE", REQUEST_URI, "a", "pw").to_header()
    ha1 = compute_ha1("a", TWILIO_REALM, "pw")

    def accepted(value: str) -> bool:
        credentials = parse_credentials(value)
        assert credentials.nonce is not None and credentials.nc is not None
        return (
            issuer.check(credentials.nonce, 11.0, TWILIO_REALM, context) is NonceStatus.VALID
            and verify(credentials, "INVITE", ha1).ok
            and tracker.accept(credentials.nonce, credentials.nc)
        )

    assert accepted(header)
    assert not accepted(header)


def test_tracker_memory_is_bounded_least_recently_used_first() -> None:
    tracker = NonceCountTracker(max_nonces=2)
    tracker.accept("a", 1)
    tracker.accept("b", 1)
    tracker.accept("a", 2)  # refreshes "a"
    tracker.accept("c", 1)  # evicts "b"
    assert len(tracker) == 2
    assert not tracker.accept("a", 2)
    assert tracker.accept("b", 1)  # forgotten, so accepted afresh


# --- Parsing -----------------------------------------------------------------------------


def test_quoted_value_may_hold_commas_and_escaped_quotes() -> None:
    value = r'Digest realm="a, \"quoted\" realm\\", nonce="x,y", qop="auth,auth-int"'
    challenge = parse_challenge(value)
    assert challenge.realm == 'a, "quoted" realm\\'
    assert challenge.nonce == "x,y"
    assert challenge.qop_options == ("auth", "auth-int")
    assert parse_challenge(challenge.to_header()) == challenge


def test_whitespace_around_separators_and_case_of_names_are_tolerated() -> None:
    credentials = parse_credentials(
        'Digest  USERNAME = "alice" ,realm="r"  ,\tNonce="n", nc = 0000000a,qop="auth" ,'
    )
    assert credentials.username == "alice"
    assert credentials.realm == "r"
    assert credentials.nonce == "n"
    assert credentials.nc == 10
    assert credentials.qop == "auth"


def test_folded_header_value_is_unfolded() -> None:
    challenge = parse_challenge('Digest realm="r",\r\n  nonce="n"')
    assert challenge.nonce == "n"


def test_credentials_serialise_qop_nc_algorithm_bare_and_strings_quoted() -> None:
    credentials = parse_credentials(
        'Digest username="a", realm="r", nonce="n", uri="sip:b@c", response="ff", '
        'algorithm="MD5", qop="auth", nc="00000001", cnonce="c"'
    )
    header = credentials.to_header()
    assert "algorithm=MD5" in header and "qop=auth" in header and "nc=00000001" in header
    assert 'username="a"' in header and 'uri="sip:b@c"' in header and 'cnonce="c"' in header


def test_unknown_scheme_keeps_params_opaque() -> None:
    challenge = parse_challenge('Bearer realm="example", error=invalid_token')
    assert challenge.scheme == "Bearer"
    assert not challenge.is_digest
    assert challenge.params == ()
    assert challenge.raw == 'realm="example", error=invalid_token'
    assert challenge.to_header() == 'Bearer realm="example", error=invalid_token'
    assert parse_credentials("Basic QWxhZGRpbjpvcGVu").raw == "QWxhZGRpbjpvcGVu"


def test_several_challenges_in_one_value_are_split() -> None:
    challenges = parse_challenges(
        'Digest realm="r", nonce="a,b", algorithm=SHA-256, qop="auth", '
        'Digest realm="r", nonce="c", qop="auth", Basic realm="r"'
    )
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5", "MD5"]
    assert challenges[0].nonce == "a,b"
    assert challenges[2].scheme == "Basic"


@pytest.mark.parametrize(
    ("value", "defect"),
    [
        ("", "expected authentication scheme"),
        ('Digest realm="unterminated', "unterminated quoted string"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ('Digest realm="r", realm="s"', "duplicate parameter 'realm'"),
        ("Digest realm", "expected '='"),
        ('Digest ="x"', "expected parameter name"),
        ("Digest realm=", "expected value of parameter 'realm'"),
        ("Digest realm=a b", "expected ','"),
        ('Digest realm="a\x01b"', "control character"),
        ('Digest realm="a"\r\nnonce="n"', "line break"),
        ('Digest realm="a\\', "unterminated"),
        ('Digest"realm"', "expected whitespace after scheme"),
    ],
)
def test_malformed_values_raise_syntax_error_naming_the_defect(value: str, defect: str) -> None:
    with pytest.raises(DigestSyntaxError, match=defect.replace("(", r"\(")):
        parse_credentials(value)


# --- Properties --------------------------------------------------------------------------

_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~"
_names = st.text(alphabet=_TOKEN_ALPHABET, min_size=1, max_size=12)
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=30,
)
_params = st.lists(st.tuples(_names, _values), max_size=8, unique_by=lambda pair: pair[0])
_KNOWN_NAMES = ["realm", "nonce", "qop", "algorithm", "nc", "uri", "opaque", "stale", "cnonce"]


@given(params=_params, known=st.lists(st.tuples(st.sampled_from(_KNOWN_NAMES), _values)))
@settings(max_examples=200)
def test_to_header_then_parse_round_trips_params(
    params: list[tuple[str, str]], known: list[tuple[str, str]]
) -> None:
    merged = dict(known)
    merged.update(params)
    ordered = tuple(merged.items())
    for kind, parse in ((Challenge, parse_challenge), (Credentials, parse_credentials)):
        original = kind(scheme="Digest", params=ordered)
        assert parse(original.to_header()) == original


@given(st.text(max_size=80))
@settings(max_examples=300)
def test_arbitrary_text_raises_only_syntax_errors(text: str) -> None:
    for parse in (parse_challenge, parse_credentials, parse_challenges):
        with contextlib.suppress(DigestSyntaxError):
            parse(text)


@given(st.text(alphabet='Digest rlmnoc="\\, =\t', max_size=60))
@settings(max_examples=300)
def test_digest_shaped_garbage_raises_only_syntax_errors(text: str) -> None:
    try:
        credentials = parse_credentials("Digest " + text)
    except DigestSyntaxError:
        return
    verify(credentials, "INVITE", md5_hex("x"))  # never raises either


def test_compute_response_refuses_incomplete_qop_inputs() -> None:
    with pytest.raises(DigestError):
        compute_response("0" * 32, "INVITE", "sip:a@b", "n", qop="auth")


@given(st.text(alphabet=st.sampled_from(list('ab=,"\\ \t\x01xyz-')), max_size=40))
def test_fast_parameter_parser_agrees_with_the_scanner(text: str) -> None:
    from siptwin.sip.digest import DigestSyntaxError, _parse_params_fast, _parse_params_scanned

    fast = _parse_params_fast(text)
    if fast is None:
        return  # the scanner decides (and names the defect)
    try:
        assert _parse_params_scanned(text) == fast
    except DigestSyntaxError as err:
        raise AssertionError(f"fast path accepted what the scanner refuses: {text!r}") from err
