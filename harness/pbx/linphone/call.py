#!/usr/bin/env python3
"""One call from linphonec (Debian ``linphone-cli``) as a desk phone: its configuration is
rendered from ``linphonerc.tmpl`` next to this file, then linphonec is driven through a
pseudo-terminal (with a pipe for stdin its core stops iterating) with ``call``, and
``terminate`` after the talk time unless the far end hung up first.

Exit 0 when the call was answered ("connected") and ended; 1 otherwise, with
linphonec's output, so that a CI step or a ``device: command`` scenario step fails on it.

    python3 call.py --proxy 127.0.1.3:5060 --host acme.sip.ie1.twilio.com \\
        --user alice --password Harbour7Lights --transport tcp --workdir /tmp/phone

linphonec quirks handled here: ``$HOME/.local/share/linphone`` must exist or it never
listens; its network monitor declares a loopback-only network down mid-call
(``auto_net_state_mon=0``); audio is files, not a sound card.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from phone_args import call_parser  # noqa: E402 (harness/pbx, next to this folder)

STARTUP = 5.0  # the longest wait for linphonec's first prompt


def render(args: argparse.Namespace, workdir: Path) -> Path:
    values = {"proxy": args.proxy, "host": args.host, "user": args.user or "phone",
              "password": args.password, "transport": args.transport, "bind": args.bind,
              "ca": args.ca or "", "workdir": workdir,
              **{f"{t}_port": -1 if t == args.transport else 0 for t in ("udp", "tcp", "tls")}}
    lines = (HERE / "linphonerc.tmpl").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.startswith("#")).format(**values)
    if not args.user:  # no credentials: drop the auth section
        text = text.split("[auth_info_0]")[0]
    rc = workdir / "linphonerc"
    rc.write_text(text + "\n")
    with wave.open(str(workdir / "silence.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 3)
    return rc


def main() -> int:
    parser = call_parser(__doc__.split("\n\n")[0], talk_seconds=2.0)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    binary = shutil.which("linphonec")
    if binary is None:
        print("linphonec is not installed (Debian package linphone-cli)")
        return 2
    workdir = args.workdir.resolve()
    (workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
    rc = render(args, workdir)

    controller, terminal = pty.openpty()
    proc = subprocess.Popen([binary, "-c", str(rc)], stdin=terminal, stdout=terminal,
                            stderr=terminal, cwd=workdir, start_new_session=True,
                            env={**os.environ, "HOME": str(workdir)})
    os.close(terminal)
    output = bytearray()

    def read(seconds: float, until: re.Pattern[str] | None = None) -> re.Match[str] | None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    output.extend(os.read(controller, 65536))
                except OSError:
                    return None
            if until is not None:
                found = until.search(output.decode(errors="replace"))
                if found:
                    return found
        return None

    def send(line: str) -> None:
        os.write(controller, (line + "\n").encode())

    answered = False
    ended = re.compile(r"Call \d+ .*(ended|terminated)", re.I)
    try:
        # Commands typed before the first prompt are lost; the prompt comes once the core runs.
        read(STARTUP, re.compile(r"linphonec> "))
        send(f"call sip:{args.service}@{args.host}")
        outcome = read(args.timeout, re.compile(
            r"Call \d+ with .* connected|Call \d+ .*(error|declined|failed|terminated)"
            r"|(Forbidden|Not Found|Busy Here|Request Timeout|Unauthorized)", re.I))
        answered = bool(outcome and "connected" in outcome.group(0))
        # The talk time ends early when the far end hangs up (an app that says <Hangup/>).
        if answered and not read(args.seconds, ended):
            send("terminate")
            read(1.5, ended)
        send("quit")
        read(2.0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        os.close(controller)
    text = output.decode(errors="replace")
    print(text[-4000:])
    print("linphonec: call answered and ended" if answered else "linphonec: call not answered")
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
