"""sipvicious against a region node: what an attacker on the network learns (loopback only).

Each tool runs as a subprocess with its own local port, HOME and loopback bind address, over
UDP, never with -A/-R and never svcrash (siptwin.harness.sipvicious refuses them). Findings are
written as result records, so the HTML report lists them under feature ``security``.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.harness.security import record_security_result
from siptwin.harness.sipp import PeerMissing, require_binary
from siptwin.harness.sipvicious import run_tool
from tests.support import PASSWORD

pytestmark = pytest.mark.peer

UNLISTED = "127.0.0.1"
LISTED = "127.0.0.77"


@pytest.fixture(autouse=True)
def _sipvicious_installed() -> None:
    for tool in ("svmap", "svwar", "svcrack"):
        try:
            require_binary(f"sipvicious_{tool}")
        except PeerMissing as err:
            pytest.fail(f"{err} (pip install -e '.[test]' installs sipvicious)")


async def _run(tool: str, node, *args: str, timeout: float = 40.0):
    return await asyncio.to_thread(run_tool, tool, node, *args, bind=UNLISTED, timeout=timeout)


async def test_acl_domain_is_invisible_to_a_scan_from_an_unlisted_address(harness, results_dir) -> None:
    began = time.perf_counter()
    await harness.provision(DomainPlan("acme", acl=[LISTED]))
    node = harness.node_port("us1")
    host = "acme.sip.us1.twilio.com"
    edge = await _run("svmap", node)
    war = await _run("svwar", node, "-m", "INVITE", "--domain", host, "-e", "1000-1004", "--force",
                     "--maximumtime", "3")
    calls = [c for c in harness.twin.calls.all() if (c.domain_name or "") == "acme.sip.twilio.com"]
    # The edge answers OPTIONS, as Twilio's public edges do: it reveals an edge, no domain.
    assert edge.exit == 0 and edge.rows and edge.rows[0][1] == "Twilio", edge.output
    # The domain says nothing at all to an unlisted address (seed profile: silent drop).
    assert not war.found and war.rows == [], war.output
    assert calls and all(c.status == "dropped" and c.final_status is None for c in calls), \
        [(c.status, c.final_status) for c in calls]
    assert all(any(a.code == 32201 for a in c.alerts) for c in calls)
    record_security_result(results_dir, "svmap-svwar-acl-domain-invisible",
                   "A domain behind an IP ACL is invisible to svmap/svwar from an unlisted address",
                   region="us1", passed=True, pins=["spec §4.2 step 6", "seed profile"],
                   peers=[edge.as_record(), war.as_record()],
                   duration=time.perf_counter() - began,
                   notes=[f"svmap finds the edge {edge.rows[0][0]} (User-Agent 'Twilio'): OPTIONS "
                          "is answered, as on Twilio's public edges; that names no domain.",
                          f"svwar -m INVITE --domain {host} from {UNLISTED}: {len(calls)} INVITEs "
                          "dropped silently (32201 alert each), no answer, nothing found."])


async def test_svwar_cannot_tell_existing_from_missing_usernames(harness, results_dir, tmp_path) -> None:
    began = time.perf_counter()
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)],
                                       sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    node = harness.node_port("ie1")
    host = "acme.sip.ie1.twilio.com"
    refused = await _run("svwar", node, "--domain", host, "-e", "1000")
    # svwar first probes made-up users to learn the "no such user" answer (its BADUSER
    # fingerprint), then compares. One run per username so every one is really asked.
    runs = {}
    for user in ("alice", "bob", "1000", "admin"):  # alice exists, the others do not
        (tmp_path / f"{user}.txt").write_text(f"{user}\n")
        runs[user] = await _run("svwar", node, "--domain", host, "-d", str(tmp_path / f"{user}.txt"),
                                "--force", "--maximumtime", "3", "--debug")
    # --debug prints every response svwar received: its probes and the username it was given.
    statuses = {user: sorted(set(re.findall(r"SIP/2\.0 (\d{3}) ", run.output)))
                for user, run in runs.items()}
    # Without --force svwar gives up: a made-up user is challenged like any other.
    assert "authentication request for an unknown extension" in refused.output, refused.output
    for user, run in runs.items():
        assert not run.found and run.rows == [], (user, run.output)
        assert f"sip:{user}@{host}" in run.output, (user, run.output[-1500:])  # really asked
    assert all(v == ["407"] for v in statuses.values()), statuses
    record_security_result(results_dir, "svwar-usernames-indistinguishable",
                   "svwar cannot tell existing from missing usernames: every user is challenged",
                   region="ie1", passed=True, pins=["spec §4.2 step 7", "spec §4.3"],
                   peers=[refused.as_record(), *(r.as_record() for r in runs.values())],
                   duration=time.perf_counter() - began,
                   notes=["svwar without --force: 'SIP server replied with an authentication "
                          "request for an unknown extension' - it refuses to scan.",
                          "svwar --force for alice (exists), bob, 1000, admin (missing): every "
                          "REGISTER, and each of svwar's made-up probes, got the same 407; the answer matches svwar's 'no such user' fingerprint, so "
                          "it reports nothing found."])


async def test_svcrack_with_a_wordlist_fails_against_a_policy_compliant_password(
        harness, results_dir, tmp_path) -> None:
    began = time.perf_counter()
    await harness.provision(DomainPlan("acme", sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    node = harness.node_port("de1")
    host = "acme.sip.de1.twilio.com"
    words = tmp_path / "words.txt"
    # The usual suspects, and near misses of the real password; none is the password.
    words.write_text("\n".join(["123456", "password", "alice", "alice123", "Password1",
                                "Welcome1", "Harbour7Light", "harbour7lights", "Winter2024!",
                                "qwerty"]) + "\n")
    crack = await _run("svcrack", node, "--domain", host, "-u", "alice", "-d", str(words),
                       "--maximumtime", "3", timeout=60)
    assert crack.exit == 0 and not crack.found and crack.rows == [], crack.output
    # Control: the same run with the password in the list does find it, so the tool works.
    words.write_text(f"123456\n{PASSWORD}\n")
    control = await _run("svcrack", node, "--domain", host, "-u", "alice", "-d", str(words),
                         "--maximumtime", "3", timeout=60)
    assert control.found and control.rows == [["alice", PASSWORD]], control.output
    record_security_result(results_dir, "svcrack-wordlist-fails",
                   "svcrack with a 10-word list fails against a policy-compliant password",
                   region="de1", passed=True, pins=["spec §4.3 (password policy)", "spec §4.8"],
                   peers=[crack.as_record(), {**control.as_record(), "rows": [["alice", "(hidden)"]],
                                               "command": "(control run with the password listed)",
                                               "output_tail": ""}],
                   duration=time.perf_counter() - began,
                   notes=["svcrack REGISTER over 10 common and near-miss passwords: nothing found "
                          "(exit 0); the twin answered each wrong digest with 403.",
                          "Control: with the real password in the list svcrack finds it (exit 40), "
                          "so the negative result is the password's doing, not the tool's."])
