"""Real customer devices in the loop: Kamailio as an SBC and baresip as a desk phone.

Each device is configured from the files under ``harness/pbx/`` for one target (a region
node's address, the SIP Domain host, the credentials), started, and asked to place calls by a
command - exactly what a customer's CI job does with its own configuration. The twin then shows
what it received (see :func:`received`): the host form and region, the answer to the 407, the
X- headers and User-to-User, the codecs offered, ACK and BYE.

Blocking API (subprocesses); from asyncio call it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.calls import Call
from ..sip.errors import SipParseError
from ..sip.message import Request, parse_datagram
from .sipp import free_sip_port, free_udp_port, harness_dir, require_binary, run_sipp

KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


@dataclass
class Target:
    """Where a device sends its calls: a region node and a SIP Domain host."""

    node_addr: str
    node_port: int
    host: str  # acme.sip.ie1.twilio.com
    username: str | None = None
    password: str | None = None
    transport: str = "udp"
    region: str = ""
    tls_port: int | None = None
    dns_addr: str | None = None
    dns_port: int | None = None
    ca_file: str | None = None  # the twin's TLS certificate, for a device to trust


@dataclass
class DeviceRun:
    device: str
    exit: int
    output: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {"device": self.device, "exit": self.exit, "output_tail": self.output[-1500:],
                **self.detail}


class DeviceError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- Kamailio


class KamailioSbc:
    """``harness/pbx/kamailio/kamailio.cfg`` rendered for one target and run as a daemon.

    Calls are triggered by a SIPp UAC on the PBX side (``harness/sipp/uac_headers.xml`` sent to
    the SBC's address); the SBC forwards them to the twin and answers its 407 with uac_auth().
    """

    name = "kamailio"

    def __init__(self, target: Target, workdir: Path | None = None, *, listen: str = "127.0.0.1",
                 port: int | None = None, header: tuple[str, str] = ("X-Sbc-Site", "lisbon-1"),
                 config: Path | None = None) -> None:
        self.target = target
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="siptwin-kamailio-"))
        self.listen = listen
        self.port = port or free_udp_port(listen)
        self.header = header
        self.template = config or harness_dir() / "pbx" / "kamailio" / "kamailio.cfg"
        self.config_file = self.workdir / "kamailio.cfg"
        self.pidfile = self.workdir / "kamailio.pid"
        self.logfile = self.workdir / "kamailio.log"
        self.pid: int | None = None

    def tokens(self) -> dict[str, str]:
        return {
            "SBC_ADDR": self.listen, "SBC_PORT": str(self.port),
            "TWIN_ADDR": self.target.node_addr, "TWIN_PORT": str(self.target.node_port),
            "TWIN_HOST": self.target.host, "AUTH_USER": self.target.username or "none",
            "AUTH_PASS": self.target.password or "none", "XHDR_NAME": self.header[0],
            "XHDR_VALUE": self.header[1], "MODULE_PATH": KAMAILIO_MODULES,
        }

    def render(self) -> Path:
        tokens = self.tokens()
        for value in tokens.values():
            if "!" in value or "\n" in value or '"' in value:
                raise DeviceError(f"cannot put {value!r} into the Kamailio configuration")
        text = self.template.read_text()
        lines = text.split("\n", 1)  # keep "#!KAMAILIO" first
        header = "".join(f'#!substdef "!{k}!{v}!g"\n' for k, v in tokens.items())
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(f"{lines[0]}\n{header}{lines[1] if len(lines) > 1 else ''}")
        return self.config_file

    def check(self) -> str:
        """``kamailio -c``: parse the rendered configuration without starting."""
        binary = require_binary("kamailio")
        self.render()
        proc = subprocess.run([binary, "-c", "-f", str(self.config_file)], capture_output=True,
                              timeout=30)
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        if proc.returncode != 0:
            raise DeviceError(f"kamailio -c rejected the configuration:\n{out[-3000:]}")
        return out

    def start(self, timeout: float = 10.0) -> None:
        binary = require_binary("kamailio")
        self.render()
        with open(self.logfile, "wb") as log:
            launcher = subprocess.run(
                [binary, "-f", str(self.config_file), "-P", str(self.pidfile), "-m", "64",
                 "-M", "8", "-Y", str(self.workdir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=timeout)
        if launcher.returncode != 0:
            raise DeviceError(f"kamailio did not start (exit {launcher.returncode}):\n"
                              f"{self.log()[-3000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pidfile.exists() and self.pidfile.read_text().strip() and self._answers():
                self.pid = int(self.pidfile.read_text().strip())
                return
            time.sleep(0.01)
        self.stop()
        raise DeviceError(f"kamailio did not answer on {self.listen}:{self.port}:\n"
                          f"{self.log()[-3000:]}")

    def _answers(self) -> bool:
        """An OPTIONS gets the configuration's 405 once the SIP workers run."""
        probe = (f"OPTIONS sip:probe@{self.listen}:{self.port} SIP/2.0\r\n"
                 f"Via: SIP/2.0/UDP 127.0.0.1:{{port}};branch=z9hG4bK-probe{time.monotonic_ns()}\r\n"
                 "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@127.0.0.1>\r\n"
                 "Call-ID: probe@siptwin\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                 "Content-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.3)
            data = probe.replace("{port}", str(sock.getsockname()[1])).encode()
            try:
                sock.sendto(data, (self.listen, self.port))
                return sock.recv(65535).startswith(b"SIP/2.0 ")
            except OSError:
                return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the main process named in the pid file; wait until it is gone."""
        pid = self.pid
        if pid is None and self.pidfile.exists():
            with contextlib.suppress(ValueError):
                pid = int(self.pidfile.read_text().strip())
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.01)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid = None

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def call(self, service: str = "1000", *, calls: int = 1, uui: str = "56a390f3d2b7310023a2;encoding=hex",
             pbx_header: tuple[str, str] = ("X-Pbx-Extension", "201"),
             scenario: str = "uac_headers.xml", timeout: float = 20.0) -> DeviceRun:
        """The trigger command: a SIPp UAC on the PBX side calls through the SBC."""
        run = run_sipp((self.listen, self.port), scenario, host=self.target.host,
                       service=service, calls=calls, timeout=timeout,
                       workdir=self.workdir / f"sipp-{time.monotonic_ns()}",
                       keys={"xhdr_name": pbx_header[0], "xhdr_value": pbx_header[1], "uui": uui})
        return DeviceRun(self.name, run.exit, run.output, {"sipp": run.as_record()})

    def __enter__(self) -> KamailioSbc:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KamailioFailoverSbc(KamailioSbc):
    """The SBC with a second localized URI: ``kamailio-failover.cfg``."""

    def __init__(self, target: Target, secondary: Target, workdir: Path | None = None,
                 **options: Any) -> None:
        options.setdefault("config", harness_dir() / "pbx" / "kamailio" / "kamailio-failover.cfg")
        super().__init__(target, workdir, **options)
        self.secondary = secondary

    def tokens(self) -> dict[str, str]:
        return {**super().tokens(), "TWIN2_ADDR": self.secondary.node_addr,
                "TWIN2_PORT": str(self.secondary.node_port), "TWIN2_HOST": self.secondary.host}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # reaped between the two looks (ESRCH
        return False  # when it goes while its stat is being read)
    except OSError:
        return True
    return state != "Z"


# ---------------------------------------------------------------------------- baresip


class BaresipPhone:
    """``harness/pbx/baresip/{config,accounts.tmpl}`` rendered for one target; each call is one
    ``baresip -e "/dial ..." -t SECONDS`` run (the phone hangs up when the time is over)."""

    name = "baresip"

    def __init__(self, target: Target, workdir: Path | None = None, *, listen: str = "127.0.0.1") -> None:
        self.target = target
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="siptwin-baresip-"))
        self.listen = listen
        self.folder = harness_dir() / "pbx" / "baresip"

    def render(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        wav = self.workdir / "microphone.wav"
        with wave.open(str(wav), "wb") as out:  # aufile needs 8 kHz; one second of silence
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * 8000)
        rtp = free_udp_port(self.listen) & ~1
        t = self.target
        values = {"sip_addr": self.listen, "sip_port": free_sip_port(self.listen),
                  "transport": t.transport, "wav": wav, "rtp_low": rtp, "rtp_high": rtp + 10,
                  "username": t.username or "phone", "password": t.password or "", "host": t.host,
                  "node_addr": t.node_addr, "node_port": t.node_port}
        for source, name in (("config", "config"), ("accounts.tmpl", "accounts")):
            lines = (self.folder / source).read_text().splitlines()
            body = "\n".join(line for line in lines if not line.startswith("#"))
            (self.workdir / name).write_text(body.format(**values) + "\n")
        return self.workdir

    def call(self, service: str = "1000", *, seconds: float = 4.0, timeout: float = 30.0) -> DeviceRun:
        binary = require_binary("baresip")
        self.render()
        argv = [binary, "-f", str(self.workdir), "-e", f"/dial sip:{service}@{self.target.host}",
                "-t", str(int(seconds))]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, env={**os.environ, "HOME": str(self.workdir)})
            code, out = proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
        except subprocess.TimeoutExpired as err:
            code, out = -1, ((err.stdout or b"") + (err.stderr or b"")).decode(errors="replace")
        return DeviceRun(self.name, code, out, {"command": " ".join(argv)})

    def start(self) -> None:  # nothing runs between calls
        self.render()

    def stop(self) -> None:
        pass


DEVICES = {"kamailio": KamailioSbc, "baresip": BaresipPhone}


def trigger(device: str, target: Target, service: str = "1000", **options: Any) -> DeviceRun:
    """Start the named device, place one call through it, stop it (the scenario `pbx` action)."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
    instance = DEVICES[device](target, **options.pop("device_options", {}))
    instance.start()
    try:
        return instance.call(service, **options)
    finally:
        instance.stop()


# ---------------------------------------------------------------------------- what the twin saw


def received(call: Call) -> dict[str, Any]:
    """What the twin received for one call, from its trace: the facts PBX checks judge."""
    invites: list[Request] = []
    methods: list[str] = []
    for entry in call.trace:
        if entry.direction != "in":
            continue
        try:
            message = parse_datagram(entry.data)
        except SipParseError:
            continue
        if isinstance(message, Request):
            methods.append(message.method)
            if message.method == "INVITE":
                invites.append(message)
    codecs: list[str] = []
    headers: dict[str, str] = {}
    digest_uri = digest_uri_ok = None
    if invites:
        last = invites[-1]
        body = last.body.decode(errors="replace") if last.body else ""
        codecs = offered_codecs(body)
        headers = {name: value for name, value in last.headers
                   if name.lower().startswith("x-") or name.lower() == "user-to-user"}
        auth = last.headers.get("Proxy-Authorization")
        if auth:
            digest_uri = _param(auth, "uri")
            digest_uri_ok = digest_uri == str(last.uri)
    return {"host": call.request_uri.split("@")[-1].split(";")[0].split(">")[0] if call.request_uri else None,
            "region": call.region, "methods": methods, "invites": len(invites), "codecs": codecs,
            "headers": headers, "digest_uri": digest_uri, "digest_uri_matches": digest_uri_ok,
            "username": call.username, "status": call.status, "source": call.source_ip}


# RFC 3551 static payload types a device may offer without an rtpmap line.
STATIC_PAYLOADS = {"0": "PCMU", "3": "GSM", "4": "G723", "8": "PCMA", "9": "G722", "18": "G729"}


def offered_codecs(sdp: str) -> list[str]:
    """Codec names of the audio offer, in the offer's order (static types included)."""
    names: dict[str, str] = {}
    formats: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:"):
            number, _, rest = line[len("a=rtpmap:"):].partition(" ")
            names[number] = rest.split("/")[0]
        elif line.startswith("m=audio ") and not formats:
            formats = line.split()[3:]
    if not formats:  # no media line: whatever rtpmap lines say
        return list(names.values())
    return [names.get(f) or STATIC_PAYLOADS.get(f, f) for f in formats]


def _param(header: str, name: str) -> str | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower().endswith(name):
            return value.strip().strip('"')
    return None
