"""The reachable twin (issue 16): a phone and a scripted UA on another host reach
``siptwin up --listen ADDR`` on a non-loopback address by name, through the twin's own DNS on
port 53, over UDP and TLS, with digest authentication - and the calls complete.

Two network namespaces joined by a veth pair stand for the lab: the twin's host
(198.18.250.1, where the customer's webhook also runs) and the device's host (198.18.250.2,
whose only resolver is the twin: ``/etc/netns/NAME/resolv.conf``). The device provisions
the twin through its REST API, as any host that reaches it can, while the twin runs: the
certificate then names the new domain's host forms, under the authority trusted before. Names carry this process's
id: other test runs may create namespaces at the same time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import PASSWORD, REPO
from tests.support.cli import printed_value
from tests.support.twin import wait_until_certificate_names

TWIN_ADDRESS, DEVICE_ADDRESS = "198.18.250.1", "198.18.250.2"
WEBHOOK_PORT = 8080
SCRIPTS = REPO / "tests" / "interop" / "reach"


@dataclass
class Lab:
    twin_ns: str
    device_ns: str
    state: Path
    account_sid: str
    auth_token: str
    up_output: str
    authority_before_domains: bytes = b""

    @property
    def api(self) -> str:
        return f"http://{TWIN_ADDRESS}:8765"

    def on_device(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.device_ns, *argv, timeout=timeout)

    def api_get(self, path: str) -> dict:
        """GET through the device's namespace: the API is reachable from there only."""
        auth = b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        script = ("import sys, urllib.request as u; r = u.Request(sys.argv[1]); "
                  "r.add_header('Authorization', 'Basic ' + sys.argv[2]); "
                  "print(u.urlopen(r, timeout=10).read().decode())")
        done = self.on_device(sys.executable, "-c", script, self.api + path, auth)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def webhooks(self) -> list[dict]:
        path = self.state / "webhooks.jsonl"
        return [json.loads(line)["form"] for line in path.read_text().splitlines()] \
            if path.exists() else []


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def _siptwin_in(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("ip", "netns", "exec", ns, sys.executable, "-m", "siptwin", *args)


def _result(done: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    missing = [tool for tool in ("ip", "linphonec") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.fail(f"needs root and {', '.join(missing) or 'ip, linphonec'}: run scripts/bootstrap")
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        pytest.fail("pjsua2 is not installed: pip install -e '.[test]'")
    suffix = os.getpid()
    twin_ns, device_ns = f"siptwin-reach-twin-{suffix}", f"siptwin-reach-dev-{suffix}"
    state = tmp_path_factory.mktemp("reach") / "state"
    state.mkdir()
    resolver_dir = Path("/etc/netns") / device_ns
    webhook: subprocess.Popen[str] | None = None
    up = ["up", "--detach", "--state", str(state), "--workers", "2",
          "--listen", TWIN_ADDRESS, "--api-host", TWIN_ADDRESS,
          "--dns-host", TWIN_ADDRESS, "--dns-port", "53"]
    try:
        for argv in (["ip", "netns", "add", twin_ns], ["ip", "netns", "add", device_ns],
                     ["ip", "link", "add", "reach0", "netns", twin_ns, "type", "veth",
                      "peer", "name", "reach1", "netns", device_ns],
                     ["ip", "-n", twin_ns, "addr", "add", f"{TWIN_ADDRESS}/24", "dev", "reach0"],
                     ["ip", "-n", device_ns, "addr", "add", f"{DEVICE_ADDRESS}/24", "dev",
                      "reach1"],
                     ["ip", "-n", twin_ns, "link", "set", "reach0", "up"],
                     ["ip", "-n", device_ns, "link", "set", "reach1", "up"],
                     ["ip", "-n", twin_ns, "link", "set", "lo", "up"],
                     ["ip", "-n", device_ns, "link", "set", "lo", "up"]):
            subprocess.run(argv, check=True, capture_output=True)
        # `ip netns exec` mounts this over /etc/resolv.conf: the twin is the only resolver.
        resolver_dir.mkdir(parents=True, exist_ok=True)
        (resolver_dir / "resolv.conf").write_text(f"nameserver {TWIN_ADDRESS}\n")
        webhook = subprocess.Popen(
            ["ip", "netns", "exec", twin_ns, sys.executable, str(SCRIPTS / "webhook.py"),
             str(WEBHOOK_PORT), str(state / "webhooks.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert webhook.stdout is not None and "ready" in webhook.stdout.readline()

        started = _siptwin_in(twin_ns, *up)
        assert started.returncode == 0, started.stdout + started.stderr
        lab = Lab(twin_ns, device_ns, state, printed_value(started.stdout, "TWILIO_ACCOUNT_SID"),
                  printed_value(started.stdout, "TWILIO_AUTH_TOKEN"), started.stdout,
                  (state / "tls" / "siptwin-ca.crt").read_bytes())
        provisioned = lab.on_device(sys.executable, "-c", (
            "import sys; from siptwin.harness.provision import DomainPlan, provision, sdk_client;"
            "provision(sdk_client(*sys.argv[1:4]), DomainPlan('acme', voice_url=sys.argv[4],"
            " credentials=[('alice', sys.argv[5])], sip_registration=True,"
            " registration_credentials=[('alice', sys.argv[5])]))"),
            lab.api, lab.account_sid, lab.auth_token,
            f"http://127.0.0.1:{WEBHOOK_PORT}/voice", PASSWORD)
        assert provisioned.returncode == 0, provisioned.stderr
        yield lab
    finally:
        _siptwin_in(twin_ns, "down", "--state", str(state))
        if webhook is not None:
            webhook.terminate()
            webhook.wait(10)
        for ns in (twin_ns, device_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(resolver_dir, ignore_errors=True)


def test_up_warns_who_can_reach_a_twin_beyond_loopback(lab) -> None:
    out = lab.up_output
    assert "WARNING: this twin is reachable beyond this machine" in out
    assert f"SIP on {TWIN_ADDRESS}" in out and "can provision the twin" in out
    assert f"DNS:       {TWIN_ADDRESS}:53" in out
    assert f"every region listens on {TWIN_ADDRESS}: the Request-URI host selects" in out



def test_the_certificate_names_a_domain_created_while_the_twin_runs(lab) -> None:
    """pjsua2 refuses wildcards: the domain provisioned after start must be named, under
    the same authority the devices were given before."""
    authority = _run(sys.executable, "-m", "siptwin", "ca", "--state", str(lab.state))
    assert Path(authority.stdout.strip()).read_bytes() == lab.authority_before_domains
    # From then on every process of the twin shows it to the next connection.
    assert wait_until_certificate_names(lab.state, "acme.sip.sydney.twilio.com")
    shown = _run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                 str(lab.state / "tls" / "siptwin.crt")).stdout
    assert f"IP Address:{TWIN_ADDRESS}" in shown
    assert "DNS:acme.sip.sydney.twilio.com" in shown and "DNS:acme.sip.twilio.com" in shown
    verified = _run("openssl", "verify", "-CAfile", authority.stdout.strip(),
                    str(lab.state / "tls" / "siptwin.crt"))
    assert verified.returncode == 0, verified.stdout + verified.stderr


CLIENTS = [  # (client, transport, host form the device dials, region it names)
    ("pjsua2", "udp", "acme.sip.ie1.twilio.com", "ie1"),
    ("pjsua2", "tls", "acme.sip.sydney.twilio.com", "au1"),
    ("linphone", "udp", "acme.sip.twilio.com", "us1"),
    ("linphone", "tls", "acme.sip.dublin.twilio.com", "ie1"),
]


@pytest.mark.parametrize(("client", "transport", "host", "region"), CLIENTS,
                         ids=[f"{c}-{t}" for c, t, _, _ in CLIENTS])
def test_a_device_on_another_host_calls_the_twin_by_name(lab, client, transport, host,
                                                          region) -> None:
    test_the_certificate_names_a_domain_created_while_the_twin_runs(lab)  # waits until named
    ca = _run(sys.executable, "-m", "siptwin", "ca", "--state", str(lab.state)).stdout.strip()
    before = {c["call_id"] for c in lab.api_get(f"/siptwin/v1/Accounts/{lab.account_sid}"
                                                "/Calls.json")["calls"]}
    uri = f"sip:1000@{host}"
    if client == "pjsua2":
        register = ["--register"] if transport == "tls" else []  # REGISTER enabled: spec §4.8
        done = lab.on_device(sys.executable, str(SCRIPTS / "pjsua2_call.py"), uri,
                             "--nameserver", TWIN_ADDRESS, "--transport", transport,
                             "--ca", ca, "--user", "alice", "--password", PASSWORD, *register)
        assert done.returncode == 0, done.stderr[-3000:]
        result = _result(done)
        if register:
            assert result["register_status"] == 200, done.stdout[-6000:]
        assert "CONFIRMED" in result["states"] and result["states"][-1] == "DISCONNECTED", \
            done.stdout[-6000:]
    else:
        done = lab.on_device(sys.executable, str(SCRIPTS / "linphone_call.py"), uri,
                             "--transport", transport, "--ca", ca,
                             "--home", str(lab.state / f"linphone-{transport}"),
                             "--user", "alice", "--password", PASSWORD)
        assert done.returncode == 0, done.stderr[-3000:]
        result = _result(done)
        assert result["connected"] and result["ended"], result["output"]

    deadline = time.monotonic() + 5  # a worker process sends its records every 0.2 s
    while True:
        calls = lab.api_get(f"/siptwin/v1/Accounts/{lab.account_sid}/Calls.json")["calls"]
        new = [c for c in calls if c["call_id"] not in before and c["method"] == "INVITE"]
        if (len(new) == 1 and new[0]["status"] == "completed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(new) == 1 and new[0]["status"] == "completed", new
    if client == "pjsua2" and transport == "tls":
        registered = [c for c in calls if c["call_id"] not in before
                      and c["method"] == "REGISTER" and c["final_status"] == 200]
        assert registered and registered[0]["request_uri"].startswith("sip:acme.sip.twilio.com")
    record = new[0]
    assert record["region"] == region and record["request_uri"].startswith(uri)
    detail = lab.api_get(f"/siptwin/v1/Accounts/{lab.account_sid}/Calls/"
                         f"{record['call_id']}/Findings.json")
    assert detail["source"].startswith(f"{DEVICE_ADDRESS}:")
    assert detail["source"].endswith(f"({transport})")
    hooks = [form for form in lab.webhooks() if form.get("CallSid") == record["sid"]]
    assert hooks and hooks[0]["SipUsername"] == "alice"
    assert hooks[0]["SipSourceIp"] == DEVICE_ADDRESS
