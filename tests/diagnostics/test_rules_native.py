"""Each rule against the mistake made by the native client or raw UDP, on a live twin."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.digest import answer_challenge, parse_challenge
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD
from tests.support.rawsip import RawUac
from tests.support.twin import by_id

HOST = "acme.sip.us1.twilio.com"
URI = f"sip:1000@{HOST}"
G729_ONLY = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 20000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
PCMU_ONLY = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
SRTP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 20000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n")


async def test_healthy_authenticated_call_has_no_findings(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("us1", URI, auth=Auth("alice", PASSWORD))
    assert result.established
    assert by_id(harness.twin, result.call_id) == {}


async def test_source_not_in_acl_names_nearest_entry_and_the_acl_in_another_region(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.10/32"]))
    # The PBX's address is listed - in an ACL of the ie1 region, where the domain is not active.
    sip = harness.client("ie1").api.v2010.account.sip
    acl = await asyncio.to_thread(sip.ip_access_control_lists.create, friendly_name="office-ie1")
    await asyncio.to_thread(sip.ip_access_control_lists(acl.sid).ip_addresses.create,
                            friendly_name="pbx", ip_address="127.0.0.9")
    result = await harness.call("us1", URI, source="127.0.0.9", wait_final=1.0)
    finding = by_id(harness.twin, result.call_id)["source-not-in-acl"]
    assert finding.severity == "error" and finding.code == 32201
    assert "127.0.0.9" in finding.sentence and "dropped silently" in finding.sentence
    assert any("nearest mapped entry: 127.0.0.10/32" in e for e in finding.evidence)
    assert any("office-ie1" in e and "region ie1" in e for e in finding.evidence)
    assert "create the list in us1" in finding.fix


async def test_no_auth_mapped_points_at_the_unmapped_list(harness) -> None:
    await harness.provision(DomainPlan("acme"))
    sip = harness.client().api.v2010.account.sip
    await asyncio.to_thread(sip.credential_lists.create, friendly_name="forgotten")
    result = await harness.call("us1", URI)
    finding = by_id(harness.twin, result.call_id)["no-auth-mapped"]
    assert finding.code == 32200 and any("forgotten" in e for e in finding.evidence)


async def _challenged(uac: RawUac, node, uri: str = URI, headers=()) -> tuple:
    leg = uac.leg(uri)
    invite = uac.invite(leg, headers=headers)
    responses = await uac.transact(invite, node)
    uac.ack_failure(invite, responses[-1], node)
    return leg, invite, responses[-1]


async def test_realm_pinned_to_the_domain_name(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg, _, challenge = await _challenged(uac, node)
        offered = parse_challenge(challenge.headers.get("Proxy-Authenticate"))
        pinned = type(offered)(offered.scheme, tuple(
            (k, "acme.sip.twilio.com" if k == "realm" else v) for k, v in offered.params))
        cred = answer_challenge(pinned, "INVITE", URI, "alice", PASSWORD)
        retry = uac.invite(leg, headers=[("Proxy-Authorization", cred.to_header())])
        responses = await uac.transact(retry, node)
        uac.ack_failure(retry, responses[-1], node)
    assert responses[-1].status == 403
    finding = by_id(harness.twin, leg.call_id)["realm-mismatch"]
    assert finding.severity == "error" and 'realm="acme.sip.twilio.com"' in finding.sentence
    assert "sip.twilio.com" in finding.fix and "uac" in finding.fix


async def test_unanswered_challenge_is_a_realm_mismatch(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("us1", URI)  # no credentials configured at all
    finding = by_id(harness.twin, result.call_id)["realm-mismatch"]
    assert "never answered" in finding.sentence
    assert any('realm="sip.twilio.com"' in e for e in finding.evidence)


async def test_foreign_nonces_make_an_auth_loop(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg, _, challenge = await _challenged(uac, node)
        offered = parse_challenge(challenge.headers.get("Proxy-Authenticate"))
        for attempt in range(3):  # cached credentials with a nonce this call never got
            stale = type(offered)(offered.scheme, tuple(
                (k, f"cached-nonce-{attempt}" if k == "nonce" else v) for k, v in offered.params))
            cred = answer_challenge(stale, "INVITE", URI, "alice", PASSWORD)
            retry = uac.invite(leg, headers=[("Proxy-Authorization", cred.to_header())])
            responses = await uac.transact(retry, node)
            uac.ack_failure(retry, responses[-1], node)
    found = by_id(harness.twin, leg.call_id)
    assert found["auth-loop"].severity == "error" and "4 times" in found["auth-loop"].sentence
    assert "never issued" in found["nonce-reuse"].sentence


async def test_replayed_nonce_count_is_nonce_reuse(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg, _, challenge = await _challenged(uac, node)
        cred = answer_challenge(parse_challenge(challenge.headers.get("Proxy-Authenticate")),
                                "INVITE", URI, "alice", PASSWORD)
        header = [("Proxy-Authorization", cred.to_header())]
        first = uac.invite(leg, headers=header)
        ok = (await uac.transact(first, node, timeout=8))[-1]
        assert ok.status == 200
        uac.ack_success(leg, first, ok, node)
        bye = uac.in_dialog(leg, "BYE", ok)
        await uac.transact(bye, node)
        again = uac.invite(leg, headers=header)  # the same nonce and nc=00000001 again
        responses = await uac.transact(again, node)
        uac.ack_failure(again, responses[-1], node)
    assert responses[-1].status == 403
    finding = by_id(harness.twin, leg.call_id)["nonce-reuse"]
    assert finding.severity == "error" and "nc" in finding.fix


async def test_unknown_username_says_where_the_user_exists(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    sip = harness.client().api.v2010.account.sip
    spare = await asyncio.to_thread(sip.credential_lists.create, friendly_name="spare")
    await asyncio.to_thread(sip.credential_lists(spare.sid).credentials.create,
                            username="bob", password=PASSWORD)
    result = await harness.call("us1", URI, auth=Auth("bob", PASSWORD))
    finding = by_id(harness.twin, result.call_id)["unknown-username"]
    assert finding.code == 32202 and any("spare" in e for e in finding.evidence)
    assert "Map list spare" in finding.fix


async def test_wrong_password(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await harness.call("us1", URI, auth=Auth("alice", "Wr0ngPassword9"))
    assert result.final.status == 403
    found = by_id(harness.twin, result.call_id)
    assert found["wrong-password"].severity == "error" and "realm-mismatch" not in found


async def test_digest_uri_differs_from_request_uri(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg, _, challenge = await _challenged(uac, node)
        cred = answer_challenge(parse_challenge(challenge.headers.get("Proxy-Authenticate")),
                                "INVITE", f"sip:{node[0]}:{node[1]}", "alice", PASSWORD)
        retry = uac.invite(leg, headers=[("Proxy-Authorization", cred.to_header())])
        ok = (await uac.transact(retry, node, timeout=8))[-1]
        if ok.status == 200:
            uac.ack_success(leg, retry, ok, node)
            await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
    finding = by_id(harness.twin, leg.call_id)["digest-uri-mismatch"]
    assert finding.severity == "warning" and f"sip:{node[0]}:{node[1]}" in finding.sentence


async def test_qop_undefined_is_a_digest_client_bug(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg, _, challenge = await _challenged(uac, node)
        nonce = parse_challenge(challenge.headers.get("Proxy-Authenticate")).nonce
        header = (f'Digest username="alice", realm="sip.twilio.com", nonce="{nonce}", '
                  f'uri="{URI}", response="00000000000000000000000000000000", qop="undefined", '
                  'algorithm=MD5')
        retry = uac.invite(leg, headers=[("Proxy-Authorization", header)])
        responses = await uac.transact(retry, node)
        uac.ack_failure(retry, responses[-1], node)
    finding = by_id(harness.twin, leg.call_id)["digest-client-bug"]
    assert 'qop="undefined"' in finding.sentence and "cnonce" in finding.sentence


async def test_ip_in_request_uri(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    node = harness.node_port("us1")
    async with SipClient() as client:
        result = await client.invite(node[0], node[1], f"sip:1000@{node[0]}:{node[1]}")
    finding = by_id(harness.twin, result.call_id)["request-uri-is-ip"]
    assert finding.code is None and node[0] in finding.sentence and "$du" in finding.fix


async def test_trunk_host(harness) -> None:
    result = await harness.call("us1", "sip:+14155550100@acme.pstn.twilio.com")
    assert "trunk-host" in by_id(harness.twin, result.call_id)


async def test_unknown_edge_label(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    result = await harness.call("us1", "sip:1000@acme.sip.atlantis.us1.twilio.com")
    found = by_id(harness.twin, result.call_id)
    assert "unknown-edge-label" in found or "unknown-domain" in found


async def test_unknown_domain_suggests_the_close_name(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    result = await harness.call("us1", "sip:1000@acmee.sip.twilio.com")
    finding = by_id(harness.twin, result.call_id)["unknown-domain"]
    assert "acme.sip.twilio.com" in finding.fix


async def test_national_numbers_are_not_e164(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    result = await harness.call("us1", f"sip:00442071234567@{HOST}",
                                from_uri="sip:4155550100@127.0.0.1")
    finding = by_id(harness.twin, result.call_id)["non-e164-number"]
    assert "+442071234567" in finding.sentence and "+14155550100" in finding.sentence
    assert finding.severity == "warning"


async def test_codecs_and_dtmf(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    refused = await harness.call("us1", URI, sdp=G729_ONLY)
    assert refused.final.status == 488
    finding = by_id(harness.twin, refused.call_id)["no-g711-offered"]
    assert finding.severity == "error" and "G729" in finding.sentence
    no_dtmf = await harness.call("us1", URI, sdp=PCMU_ONLY)
    assert by_id(harness.twin, no_dtmf.call_id)["no-telephone-event"].severity == "warning"
    garbage = await harness.call("us1", URI, sdp=b"this is not sdp")
    assert "bad-sdp" in by_id(harness.twin, garbage.call_id)


async def test_srtp_on_a_plain_domain_and_udp_to_a_secure_one(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    await harness.provision(DomainPlan("vault", acl=["127.0.0.0/8"], secure=True))
    srtp = await harness.call("us1", URI, sdp=SRTP)
    assert by_id(harness.twin, srtp.call_id)["secure-media-mismatch"].code == 32207
    plain = await harness.call("us1", "sip:1000@vault.sip.us1.twilio.com")
    assert by_id(harness.twin, plain.call_id)["secure-transport-mismatch"].code == 32209


async def test_x_headers_show_their_sipheader_names_and_what_is_dropped(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    result = await harness.call("us1", URI, headers=[
        ("X-Route-Id", "7"), ("x-inin-cnv", "abc"), ("Route-Id", "8"),
        ("X-Twilio-Secret", "1"), ("X-Route-Id", "9")])
    finding = by_id(harness.twin, result.call_id)["x-header-dropped"]
    text = "\n".join(finding.evidence)
    assert "X-Route-Id: 7 → SipHeader_X-Route-Id" in text
    assert "x-inin-cnv: abc → SipHeader_x-inin-cnv" in text
    assert "Route-Id: 8 → dropped: no X- prefix" in text
    assert "X-Twilio-Secret → dropped" in text and "repeated" in text


async def test_max_forwards_exhausted_is_explained_by_its_alert(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    result = await harness.call("us1", URI, max_forwards=0)
    finding = by_id(harness.twin, result.call_id)["twilio-error"]
    assert finding.code == 32006 and "loop" in finding.sentence


async def test_webhook_failure_and_slowness(harness, app) -> None:
    from tests.support import closed_port

    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"],
                                       voice_url=f"http://127.0.0.1:{closed_port()}/voice"))
    result = await harness.call("us1", URI)
    finding = by_id(harness.twin, result.call_id)["webhook-failed"]
    assert finding.severity == "error" and finding.code == 11205
    slow_url = app.twiml("/slow", "<Response><Hangup/></Response>", delay=1.2)
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"webhook_total_timeout": 2.0}))
    await harness.provision(DomainPlan("slowpoke", acl=["127.0.0.0/8"], voice_url=slow_url))
    slow = await harness.call("us1", "sip:1000@slowpoke.sip.us1.twilio.com", hang_up=False)
    assert by_id(harness.twin, slow.call_id)["webhook-slow"].severity == "warning"


async def test_register_pitfalls(harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    await harness.provision(DomainPlan("reg", sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    node = harness.node_port("us1")
    async with SipClient() as client:
        await client.request("REGISTER", node[0], node[1], f"sip:{HOST}",
                             headers=[("Contact", "<sip:alice@127.0.0.1:5099>")],
                             to_uri=f"sip:alice@{HOST}")
        disabled = client.last.call_id
        await client.request("REGISTER", node[0], node[1], "sip:reg.sip.us1.twilio.com",
                             headers=[("Contact", "<sip:bob@127.0.0.1:5099>")],
                             auth=Auth("alice", PASSWORD), to_uri="sip:bob@reg.sip.us1.twilio.com")
        mismatch = client.last.call_id
    assert by_id(harness.twin, disabled)["register-disabled"].code == 32210
    assert by_id(harness.twin, mismatch)["register-username-mismatch"].code == 32106
    async with RawUac() as uac:
        leg = uac.leg("sip:reg.sip.us1.twilio.com", "sip:alice@reg.sip.us1.twilio.com")
        register = uac.request(leg, "REGISTER")
        register.set_header("Contact", "<sip:alice@192.168.1.20:5060>")
        register.set_header("Via", f"SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK{leg.call_id[:8]}")
        uac.send(register, node)
        await asyncio.sleep(0.3)
    assert "register-private-contact" in by_id(harness.twin, leg.call_id)


async def test_tls_sent_to_the_plain_port_is_explained(harness) -> None:
    """A PBX configured for TLS but pointed at port 5060: its ClientHello reaches the plain
    TCP listener. No SIP is ever read, yet the twin keeps a record that explains it."""
    import ssl

    host, port = harness.node_port("us1", "tcp")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname="acme.sip.twilio.com",
                                    local_addr=("127.0.0.1", 0)), 5)
        writer.close()
    except (ssl.SSLError, ConnectionError, OSError):
        pass  # expected: the twin closes the connection on the handshake
    deadline = loop.time() + 5
    records = []
    while loop.time() < deadline and not records:
        records = [c for c in harness.twin.calls.all() if c.method == "TLS"]
        await asyncio.sleep(0.05)
    assert len(records) == 1 and records[0].source_ip == "127.0.0.1"
    findings = by_id(harness.twin, records[0].call_id)
    assert list(findings) == ["tls-on-plain-port"]
    finding = findings["tls-on-plain-port"]
    assert finding.severity == "error" and finding.rule == 9 and "5061" in finding.fix
    assert f"{port}" in finding.sentence


async def test_a_tls_handshake_the_client_rejects_is_explained(harness) -> None:
    """A PBX that does not trust the edge's certificate aborts the handshake: no SIP is read,
    yet explain names the reason (it used to vanish without a trace)."""
    import socket
    import ssl

    host, port = harness.node_port("us1", "tls")
    context = ssl.create_default_context()  # the system roots: the twin's CA is not among them

    def handshake() -> None:  # a blocking socket sends its alert before it raises
        with socket.create_connection((host, port), timeout=5,
                                      source_address=("127.0.0.1", 0)) as raw, \
                context.wrap_socket(raw, server_hostname="acme.sip.twilio.com"):
            pass

    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(handshake)
    records = await _tls_records(harness, 1)
    assert len(records) == 1 and records[0].source_ip == "127.0.0.1"
    findings = by_id(harness.twin, records[0].call_id)
    assert list(findings) == ["tls-handshake-failed"]
    finding = findings["tls-handshake-failed"]
    assert finding.severity == "error" and finding.rule == 9
    assert "refused the edge's certificate" in finding.sentence, finding.sentence


async def _tls_records(harness, count: int) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    records: list = []
    while loop.time() < deadline and len(records) < count:
        records = [c for c in harness.twin.calls.all() if c.method == "TLS"]
        await asyncio.sleep(0.05)
    return records


async def _s_client(host: str, port: int, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"{host}:{port}", "-servername",
        "acme.sip.twilio.com", "-brief", *options, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.parametrize("options, reason, cause", [
    # the system's roots, not the twin's CA: openssl sends an unknown-CA alert
    (("-verify_return_error", "-CAfile", "/etc/ssl/certs/ca-certificates.crt"),
     "UNKNOWN_CA", "refused the edge's certificate"),
    (("-tls1_3",), "UNSUPPORTED_PROTOCOL", "no TLS version the edge serves"),
    (("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"), "NO_SHARED_CIPHER",
     "none of the edge's cipher suites"),
], ids=["untrusted-certificate", "tls1.3-only", "ecdsa-suites-only"])
async def test_openssl_handshakes_the_edge_refuses_are_explained(harness, options, reason,
                                                                 cause) -> None:
    """A real TLS client that gives up on (or is refused by) the edge leaves a record whose
    finding names the TLS error and what to change on the client."""
    host, port = harness.node_port("us1", "tls")
    returncode, output = await _s_client(host, port, *options)
    assert returncode != 0, output
    records = await _tls_records(harness, 1)
    assert len(records) == 1, output
    findings = by_id(harness.twin, records[0].call_id)
    assert list(findings) == ["tls-handshake-failed"]
    finding = findings["tls-handshake-failed"]
    assert reason in finding.sentence and cause in finding.sentence, finding.sentence


async def test_a_tls_client_the_edge_accepts_leaves_no_record(harness) -> None:
    """The control: TLS 1.2 with one of the edge's suites completes; nothing is recorded."""
    host, port = harness.node_port("us1", "tls")
    returncode, output = await _s_client(host, port, "-tls1_2", "-cipher",
                                         "ECDHE-RSA-AES128-GCM-SHA256")
    assert returncode == 0 and "ECDHE-RSA-AES128-GCM-SHA256" in output, output
    await asyncio.sleep(0.3)
    assert [c for c in harness.twin.calls.all() if c.method == "TLS"] == []


async def test_a_bye_that_gets_no_answer_is_explained(harness, app) -> None:
    """The twin hangs up (its <Say> ends) but the caller's socket is gone: Timer F ends the
    BYE transaction and explain says the far side may still think the call is up."""
    from siptwin.sip.transaction import TimerConfig

    voice = app.twiml("/voice", "<Response><Pause length=\"1\"/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    node = harness.twin.nodes["us1"]
    node.layer.config = TimerConfig(t1=0.05, ack_wait=node.fidelity.ack_timeout)  # F = 3.2 s
    host, port = harness.node_port("us1")
    async with SipClient("127.0.0.1", "udp") as caller:
        result = await caller.invite(host, port, "sip:1@acme.sip.us1.twilio.com", hold=0.1,
                                     hang_up=False)
    assert result.established  # the caller is gone (its socket closed) before the BYE
    record = harness.twin.calls.get(result.call_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline and "bye-not-delivered" not in by_id(harness.twin,
                                                                       result.call_id):
        await asyncio.sleep(0.2)
    finding = by_id(harness.twin, result.call_id)["bye-not-delivered"]
    assert finding.severity == "warning" and finding.rule == 11
    assert any(note.startswith("BYE not delivered to udp:127.0.0.1:") for note in record.notes)


async def test_a_bye_to_a_caller_whose_tcp_connection_died_is_explained_at_once(harness, app):
    """A TCP caller's connection is gone when the twin hangs up: the BYE cannot be sent at
    all, and that is noted at once (not 32 s later at Timer F)."""
    voice = app.twiml("/voice", "<Response><Pause length=\"1\"/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    host, port = harness.node_port("us1", "tcp")
    async with SipClient("127.0.0.1", "tcp") as caller:
        result = await caller.invite(host, port, "sip:1@acme.sip.us1.twilio.com", hold=0.1,
                                     hang_up=False)
    assert result.established  # the connection closed with the client, before the BYE
    record = harness.twin.calls.get(result.call_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8  # the <Pause> is 1 s; Timer F would take 32 s
    while loop.time() < deadline and "bye-not-delivered" not in by_id(harness.twin,
                                                                       result.call_id):
        await asyncio.sleep(0.1)
    assert "bye-not-delivered" in by_id(harness.twin, result.call_id), record.notes
    note = next(n for n in record.notes if n.startswith("BYE not delivered to tcp:127.0.0.1:"))
    assert "the connection to it failed" in note, note


async def test_sipsak_over_tls_is_answered_and_leaves_no_tls_record(harness) -> None:
    """A real SIP client through the TLS listener (sockets accepted by the twin and wrapped
    by connect_accepted_socket): its OPTIONS is answered and no handshake failure is
    recorded. (sipsak does not check the server's certificate, even with --tls-ca-cert, so
    it cannot play the client that refuses the edge.)"""
    import shutil

    if shutil.which("sipsak") is None:
        pytest.fail("sipsak is not installed: run scripts/bootstrap")
    host, port = harness.node_port("us1", "tls")
    sipsak = await asyncio.create_subprocess_exec(
        "sipsak", "-s", f"sip:1@{host}:{port}", "--transport=tls", "-p", f"{host}:{port}",
        "-v", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(sipsak.communicate(), 20)
    assert sipsak.returncode == 0 and b"SIP/2.0 200 OK" in output, output
    assert b"Via: SIP/2.0/TLS" in output
    await asyncio.sleep(0.3)
    assert [c for c in harness.twin.calls.all() if c.method == "TLS"] == []
