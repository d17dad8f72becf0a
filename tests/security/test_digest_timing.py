"""Finding 9 of issue 15, timing: a digest answer naming a missing username was refused 29 µs
sooner than a wrong answer for an existing one (the hashes were skipped), so response times
told which usernames exist. Now a missing username is verified against a dummy HA1: the same
hashing, the same comparison, the same 403.

The exact check counts the hash computations of each path; the timing check measures many
interleaved tries of each and compares the distributions (medians and quartiles), so a
loaded machine slows both alike.
"""

from __future__ import annotations

import statistics
import time
from types import MappingProxyType

from siptwin.cloud.view import CredentialSnapshot
from siptwin.model.codes import REALM, Stage
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.regions.pipeline import DigestState, InviteContext, check_digest
from siptwin.settings import build_fidelity
from siptwin.sip import digest
from siptwin.sip.digest import (
    NonceIssuer,
    answer_challenge,
    compute_ha1,
    make_challenge,
    nonce_context,
)
from siptwin.sip.message import parse_datagram

URI = "sip:acme.sip.twilio.com"
CALL_ID = "timing-probe@127.0.0.1"


def _context(username: str) -> tuple[InviteContext, dict[str, CredentialSnapshot]]:
    """A REGISTER answering a valid challenge with a wrong password, as ``username``."""
    catalogue = Catalogue.load(default_catalogue_dir())
    state = DigestState(NonceIssuer(b"k" * 32), opaque="0" * 32)
    now = time.time()
    nonce = state.issuer.issue(now, REALM, nonce_context(CALL_ID, "127.0.0.1"))
    credentials = answer_challenge(make_challenge(REALM, nonce, state.opaque), "REGISTER", URI,
                                   username, "Wr0ngPassword9")
    raw = (f"REGISTER {URI} SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-timing\r\n"
           "From: <sip:alice@acme.sip.twilio.com>;tag=1\r\nTo: <sip:alice@acme.sip.twilio.com>\r\n"
           f"Call-ID: {CALL_ID}\r\nCSeq: 2 REGISTER\r\nMax-Forwards: 70\r\n"
           f"Authorization: {credentials.to_header()}\r\nContent-Length: 0\r\n\r\n").encode()
    request = parse_datagram(raw)
    region = next(iter(catalogue))
    fidelity = build_fidelity("seed", {"authorization_name_match": "off"})
    ctx = InviteContext(request, "udp", "127.0.0.1", 5070, region, catalogue, None,  # type: ignore[arg-type]
                        fidelity, state, now)
    stored = {"alice": CredentialSnapshot("alice", compute_ha1("alice", REALM, "Harbour7Lights"),
                                          "", "CL" + "0" * 32)}
    return ctx, MappingProxyType(stored)  # type: ignore[return-value]


def test_a_missing_username_costs_the_same_hashing_as_a_wrong_password(monkeypatch) -> None:
    hashes: list[bytes] = []
    md5 = digest._HASHES["md5"]

    def counting(data: bytes) -> str:
        hashes.append(data)
        return md5(data)

    existing, missing = _context("alice"), _context("mallory")
    monkeypatch.setitem(digest._HASHES, "md5", counting)
    for (ctx, stored), name in ((existing, "alice"), (missing, "mallory")):
        hashes.clear()
        verdict = check_digest(ctx, "REGISTER", stored, Stage.REGISTRATION)
        assert verdict is not None and verdict.status == 403, (name, verdict)
        assert verdict.error is not None and verdict.error.code == 32202
        if name == "alice":
            for_existing = len(hashes)
        else:
            for_missing = len(hashes)
    assert for_existing >= 2  # HA2 and the response, at least
    assert for_missing == for_existing, (for_missing, for_existing)


def test_missing_and_existing_usernames_take_the_same_time() -> None:
    existing, missing = _context("alice"), _context("mallory")
    samples: dict[str, list[float]] = {"alice": [], "mallory": []}
    clock = time.perf_counter_ns
    for _ in range(4000):  # interleaved, so load and frequency changes hit both alike
        for name, (ctx, stored) in (("alice", existing), ("mallory", missing)):
            began = clock()
            check_digest(ctx, "REGISTER", stored, Stage.REGISTRATION)
            samples[name].append((clock() - began) / 1000)
    quartiles = {name: statistics.quantiles(values, n=4) for name, values in samples.items()}
    a, m = quartiles["alice"], quartiles["mallory"]
    print(f"\ncheck_digest, 4000 tries each: existing median {a[1]:.1f} µs (IQR {a[0]:.1f}-"
          f"{a[2]:.1f}), missing median {m[1]:.1f} µs (IQR {m[0]:.1f}-{m[2]:.1f})")
    # Before the dummy HA1 a missing username skipped the hashing: its median was half the
    # existing username's (9 against 19 µs). Now the medians differ by less than the spread
    # of either distribution, or a tenth of a try, whichever is larger.
    noise = max(a[2] - a[0], m[2] - m[0], 0.1 * a[1])
    assert abs(m[1] - a[1]) <= noise, (a, m)
