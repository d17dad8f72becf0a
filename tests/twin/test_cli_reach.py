"""``siptwin up --region-address``, ``siptwin hosts`` and ``siptwin ca`` as users run them,
on loopback addresses no other test uses (the lab case on other addresses, and --listen
beyond loopback, are in tests/interop/test_reachable_twin.py)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from dnslib import DNSRecord

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from tests.support import PASSWORD, REPO, free_port
from tests.support.cli import printed_value, run_siptwin
from tests.support.twin import wait_until_certificate_names, worker_network

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py


def _served_names(address: str, authority: Path) -> set[str]:
    """The DNS names of the certificate one TLS connection is shown (verified)."""
    context = ssl.create_default_context(cafile=str(authority))
    with socket.create_connection((address, 5061), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="acme.sip.dublin.twilio.com") as tls:
        return {value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"}


def test_regions_on_chosen_addresses_serve_dns_hosts_lines_and_calls(tmp_path) -> None:
    base = worker_network().removesuffix(".0/24")
    us1, ie1 = f"{base}.51", f"{base}.53"
    state, api_port, dns_port = tmp_path / "state", free_port(), free_port()
    started = run_siptwin("up", "--detach", "--workers", "2", "--regions", "us1,ie1", "--state",
                           str(state), "--api-port", str(api_port), "--dns-port", str(dns_port),
                           "--region-address", f"ie1={ie1}", "--region-address", f"us1={us1}")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        out = started.stdout
        assert "WARNING" not in out  # loopback only: nobody else can reach it
        assert any(line.startswith("ie1") and ie1 in line for line in out.splitlines()), out
        sid = printed_value(out, "TWILIO_ACCOUNT_SID")
        token = printed_value(out, "TWILIO_AUTH_TOKEN")
        provision(sdk_client(f"http://127.0.0.1:{api_port}", sid, token),
                  DomainPlan("acme", voice_url="twiml:<Response><Pause length=\"1\"/></Response>",
                             credentials=[("alice", PASSWORD)]))

        raw = DNSRecord.question("acme.sip.dublin.twilio.com", "A").send("127.0.0.1", dns_port,
                                                                          timeout=2)
        assert [str(rr.rdata) for rr in DNSRecord.parse(raw).rr] == [ie1]
        hosts = run_siptwin("hosts", "--state", str(state)).stdout.splitlines()
        assert f"{ie1}\tacme.sip.ie1.twilio.com acme.sip.dublin.twilio.com" in hosts[1]
        assert hosts[0].startswith(f"{us1}\tacme.sip.twilio.com ")

        domain = "acme.sip.ie1.twilio.com"
        call = subprocess.run(
            ["sipp", f"{ie1}:5060", "-sf", str(REPO / "harness" / "sipp" / "uac_auth.xml"),
             "-s", "1000", "-au", "alice", "-ap", PASSWORD, "-key", "domain", domain,
             "-auth_uri", f"1000@{domain}", "-i", "127.0.0.1", "-p", "0", "-m", "1",
             "-recv_timeout", "5s", "-timeout", "30s", "-nostdin"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert call.returncode == 0, call.stdout[-2000:] + call.stderr[-2000:]

        path = run_siptwin("ca", "--state", str(state))
        authority = state.resolve() / "tls" / "siptwin-ca.crt"
        assert path.returncode == 0 and path.stdout.strip() == str(authority)
        pem = run_siptwin("ca", "--pem", "--state", str(state)).stdout
        assert pem == authority.read_text() and "PRIVATE" not in pem
        shown = subprocess.run(["openssl", "x509", "-noout", "-ext", "basicConstraints"],
                               input=pem, capture_output=True, text=True).stdout
        assert "CA:TRUE" in shown
        served = state / "tls" / "siptwin.crt"
        names = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                                str(served)], capture_output=True, text=True).stdout
        assert f"IP Address:{ie1}" in names and f"IP Address:{us1}" in names
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(authority), str(served)],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # The domain was created after start: within seconds the certificate's description
        # names its host forms, and from then on both processes (SO_REUSEPORT spreads the
        # connections over them) present a certificate naming them to every connection -
        # neither waits for its next look at the files.
        assert wait_until_certificate_names(state, "acme.sip.dublin.twilio.com")
        seen = [_served_names(ie1, authority) for _ in range(24)]
        assert all("acme.sip.dublin.twilio.com" in names for names in seen), seen
        assert json.loads((state / "api.json").read_text())["placement"]["region_addresses"] \
            == [f"ie1={ie1}", f"us1={us1}"]
    finally:
        stopped = run_siptwin("down", "--state", str(state))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def test_placements_the_twin_cannot_serve_are_refused_before_it_starts(tmp_path) -> None:
    state = str(tmp_path / "state")
    for args, message in (
        (["--listen", "0.0.0.0"], "not one host's address"),
        (["--listen", "127.0.0.9", "--backend", "process"], "apply to the embedded backend"),
        (["--api-host", "198.18.0.1", "--backend", "process"], "apply to the embedded backend"),
        (["--region-address", "ie1"], "expected REGION=ADDRESS"),
        (["--listen", "127.0.0.9", "--caller-location", "london"], "every region shares one"),
        (["--region-address", "xx9=127.0.0.9"], "unknown region"),
        (["--listen", "127.0.0.9", "--region-address", "ie1=127.0.0.10"], "cannot move"),
    ):
        refused = run_siptwin("up", "--state", state, *args, timeout=30)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    missing = run_siptwin("ca", "--state", state)
    assert missing.returncode == 1 and "siptwin up --state" in missing.stderr
