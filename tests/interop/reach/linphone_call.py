"""One authenticated call placed with linphonec (Debian ``linphone-cli``) as a desk phone
would: its proxy named by host, found through the system resolver (``/etc/resolv.conf``, or
``/etc/netns/NAME/resolv.conf`` under ``ip netns exec``), TLS verified against ``root_ca``.
linphonec reads commands from a terminal only (piped stdin stalls its core), so it runs on a
pseudo-terminal. Prints one line, ``RESULT`` and JSON: whether the call connected and ended, and the output.

    python3 linphone_call.py --transport tls --ca twin.crt --home DIR \\
        --user alice --password ... sip:1000@acme.sip.ie1.twilio.com
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

RC = """\
[sip]
sip_port={udp}
sip_tcp_port={tcp}
sip_tls_port={tls}
default_proxy=0
# Without this, in a namespace its network monitor declares the network down mid-call.
auto_net_state_mon=0
root_ca={ca}
verify_server_certs=1
verify_server_cn=1
register_only_when_network_is_up=0

[rtp]
audio_rtp_port=7078

[proxy_0]
reg_proxy=<sip:{domain};transport={transport}>
reg_identity=sip:{user}@{domain}
reg_sendregister=0
publish=0

[auth_info_0]
username={user}
passwd={password}
realm=sip.twilio.com
domain={domain}
"""


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("uri")
    args.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    args.add_argument("--ca", default="")
    args.add_argument("--home", type=Path, required=True)
    args.add_argument("--user", required=True)
    args.add_argument("--password", required=True)
    args.add_argument("--timeout", type=float, default=25)
    opts = args.parse_args()

    domain = opts.uri.split("@", 1)[1].split(";", 1)[0]
    # linphonec never listens unless this directory exists.
    (opts.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
    rc = opts.home / "linphonerc"
    ports = {"udp": 0, "tcp": 0, "tls": 0}
    ports[opts.transport] = -1  # a random port on the transport used, none on the others
    rc.write_text(RC.format(domain=domain, transport=opts.transport, ca=opts.ca, user=opts.user,
                            password=opts.password, **ports))
    controller, terminal = pty.openpty()
    phone = subprocess.Popen(["linphonec", "-c", str(rc)], stdin=terminal, stdout=terminal,
                             stderr=terminal, env={**os.environ, "HOME": str(opts.home)},
                             close_fds=True)
    os.close(terminal)
    output = ""

    def read_until(pattern: str, seconds: float) -> bool:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if re.search(pattern, output):
                return True
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    output += os.read(controller, 65536).decode(errors="replace")
                except OSError:
                    return bool(re.search(pattern, output))
        return False

    def send(line: str) -> None:
        os.write(controller, (line + "\n").encode())

    try:
        read_until(r"linphonec> ", 10)
        send("soundcard use files")  # no sound card here
        send(f"call {opts.uri}")
        connected = read_until(r"Call \d+ with .* connected", opts.timeout)
        ended = connected and read_until(r"Call \d+ with .* ended|Call \d+ ended", opts.timeout)
        send("quit")
        read_until(r"Terminating|\Z", 5)
    finally:
        try:
            phone.wait(5)
        except subprocess.TimeoutExpired:
            phone.kill()
            phone.wait()
        os.close(controller)
    print("RESULT " + json.dumps({"connected": connected, "ended": ended, "output": output[-3000:]}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
