"""The process backend: the control plane and every region in their own OS processes.

Both cores work, and a region can die on its own (``stop_region``) while the others go on -
what a PBX's failover between localized URIs needs. It offers the harness what
:class:`~siptwin.twin.embedded.EmbeddedTwin` offers (``catalogue``, ``nodes[...].addresses``,
``calls.get``, ``set_fidelity``, the API URL and credentials), reading call records and
changing settings through each region process's HTTP side channel.

Limits, by design of the split: registrations are kept per region process (the embedded twin
shares them across edges), and the REST ``Calls`` resources of the control-plane process do not
list calls (they live in the region processes).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...cloud.scope import DEFAULT_REGION, PROCESSING_REGIONS
from ...cloud.view import ControlPlaneView
from ...model.calls import Call
from ...model.wire import call_from_record
from ...regions.catalogue import Catalogue, Region, default_catalogue_dir
from ...settings import Fidelity
from ..config import RegionAddress, TwinConfig
from ..region_process import READY

START_TIMEOUT = 20.0


class ProcessHandle(Protocol):
    """What a backend needs of a region's process (a container stands in for one)."""

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def send_signal(self, sig: int) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class RegionProcess:
    region: Region
    process: ProcessHandle
    addresses: dict[str, tuple[str, int] | None] = field(default_factory=dict)
    control_socket: str = ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class RemoteCalls:
    """Call records, fetched from whichever region process handled the call."""

    def __init__(self, twin: ProcessTwin) -> None:
        self._twin = twin

    def get(self, call_id: str) -> Call | None:
        found = self._fetch(call_id)
        return found[0] if found else None

    def by_sid(self, sid: str) -> Call | None:
        return self.get(sid)  # the side channel looks CA… SIDs up too

    def all(self) -> list[Call]:
        calls: list[Call] = []
        for proc in self._live():
            records = _get_json(proc.control_socket, "/calls") or []
            calls.extend(call_from_record(r) for r in records)
        return sorted(calls, key=lambda c: c.created_at)

    def last(self) -> Call | None:
        calls = self._fetch("last")
        return max(calls, key=lambda c: c.created_at) if calls else None

    def _live(self) -> list[RegionProcess]:
        return [p for p in self._twin.regions.values() if p.alive]

    def _fetch(self, ref: str) -> list[Call]:
        found = []
        for proc in self._live():
            record = _get_json(proc.control_socket, "/calls/" + urllib.parse.quote(ref, safe=""))
            if record is not None:
                found.append(call_from_record(record))
        return found


class ProcessTwin:
    def __init__(self, config: TwinConfig) -> None:
        self.config = config
        self.catalogue = config.catalogue or Catalogue.load(default_catalogue_dir())
        self.regions: dict[str, RegionProcess] = {}
        self.nodes = self.regions  # the harness reads nodes[region].addresses
        self.calls = RemoteCalls(self)
        self._control: subprocess.Popen[str] | None = None
        self.store = None  # the store belongs to the control-plane process
        self.control: ControlPlaneView | None = None  # read-only, like the region processes
        self._api_url = ""
        self.account_sid = ""
        self.auth_token = ""
        self.auth_tokens: dict[str, str] = {}

    @property
    def fidelity(self) -> Fidelity:
        return self.config.fidelity

    @property
    def api_url(self) -> str:
        return self._api_url

    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self._start_control_plane()
            self.control = ControlPlaneView(self.config.state_dir)
            self.auth_tokens = self._region_tokens(self.control)
            await asyncio.gather(*(self.start_region(r.id) for r in self.catalogue))
        except BaseException:
            await self.stop()
            raise

    async def _start_control_plane(self) -> None:
        cfg = self.config
        env = {**os.environ}
        if cfg.account_sid and cfg.auth_token:
            env.update(TWILIO_ACCOUNT_SID=cfg.account_sid, TWILIO_AUTH_TOKEN=cfg.auth_token)
        log = cfg.state_dir / "control-plane.log"
        self._control = _spawn([sys.executable, "-m", "siptwin.cloud", "--state", str(cfg.state_dir),
                                "--host", cfg.api_host, "--port", str(cfg.api_port)], env, log)
        lines = await _read_until(self._control, log, lambda line: line.startswith("state:"))
        text = "\n".join(lines)
        url = re.search(r"control plane: (http://\S+)", text)
        sid = re.search(r"TWILIO_ACCOUNT_SID=(\S+)", text)
        token = re.search(r"TWILIO_AUTH_TOKEN=(\S+)", text)
        if not (url and sid and token):
            raise RuntimeError(f"the control plane did not start:\n{text}")
        self._api_url, self.account_sid = url.group(1), sid.group(1)
        self.auth_token = cfg.auth_token or token.group(1)

    def _region_tokens(self, control: ControlPlaneView) -> dict[str, str]:
        tokens = {region: control.account_auth_token(self.account_sid, region)
                  for region in PROCESSING_REGIONS}
        tokens[DEFAULT_REGION] = self.auth_token
        return {region: token for region, token in tokens.items() if token}

    async def start_region(self, region_id: str) -> None:
        """Start (or restart after ``stop_region``) one region's process."""
        region = self.catalogue[region_id]
        argv = [sys.executable, "-m", "siptwin.twin.region_process", "--state", str(self.config.state_dir),
                "--region", region.id, "--address", region.address,
                "--profile", self.fidelity.profile]
        if region.udp_port == 0:
            argv.append("--ephemeral")
        argv = self._wrap(region_id, argv)
        log = self.config.state_dir / f"region-{region.id}.log"
        process = _spawn(argv, dict(os.environ), log)
        lines = await _read_until(process, log, lambda line: READY in line)
        ready = json.loads(lines[-1])
        proc = RegionProcess(region, process, control_socket=ready["control_socket"])
        proc.addresses = {t: ((region.address, p) if p else None) for t, p in ready["ports"].items()}
        self.regions[region.id] = proc
        if self.fidelity.overrides:
            self._push_fidelity(proc)

    def _wrap(self, region_id: str, argv: list[str]) -> list[str]:
        """How a region's command line runs; the netns backend prefixes ``ip netns exec``."""
        return argv

    def caller_address(self, source: str) -> str:
        """Where a scenario's (loopback) source address is in this backend: unchanged."""
        return source

    def acl_entry(self, entry: str) -> str:
        return entry

    async def stop_region(self, region_id: str) -> None:
        """Kill one region's process (SIGKILL: a crash, not a goodbye)."""
        proc = self.regions[region_id]
        if proc.alive:
            proc.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.process.wait, 10)

    def impair_region(self, region_id: str, latency_ms: float = 0.0, loss_percent: float = 0.0) -> None:
        """Latency and loss on the region's UDP traffic, applied inside its process."""
        _post_json(self.regions[region_id].control_socket, "/impair",
                   {"latency_ms": latency_ms, "loss_percent": loss_percent})

    def blackhole_region(self, region_id: str) -> None:
        self.impair_region(region_id, loss_percent=100.0)

    def set_fidelity(self, fidelity: Fidelity) -> None:
        self.config.fidelity = fidelity
        for proc in self.regions.values():
            if proc.alive:
                self._push_fidelity(proc)

    def _push_fidelity(self, proc: RegionProcess) -> None:
        _post_json(proc.control_socket, "/fidelity", {"profile": self.fidelity.profile,
                                                    "overrides": dict(self.fidelity.overrides)})

    async def stop(self) -> None:
        for proc in self.regions.values():
            _terminate(proc.process)
        if self._control is not None:
            _terminate(self._control)
            self._control = None
        self.regions.clear()
        if self.control is not None:
            self.control.close()
            self.control = None

    @property
    def dns_address(self) -> tuple[str, int] | None:
        return None  # the embedded twin's DNS server has no process of its own yet

    @property
    def certificate(self) -> Path | None:
        return None  # each region process makes its own (see twin.region_process)

    def region_addresses(self) -> list[RegionAddress]:
        return [
            RegionAddress(p.region, p.region.address,
                          *(p.addresses[t][1] if p.addresses.get(t) else None  # type: ignore[index]
                            for t in ("udp", "tcp", "tls")))
            for p in self.regions.values()
        ]


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    # Output goes to a file, never a pipe nobody reads: a chatty child must not block.
    with log.open("w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


async def _read_until(process: subprocess.Popen[str], log: Path, done: Any) -> list[str]:
    """The child's output lines up to the first one ``done`` accepts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        lines = log.read_text().splitlines()
        for index, line in enumerate(lines):
            if done(line):
                return lines[: index + 1]
        if process.poll() is not None:
            raise RuntimeError(f"process exited (code {process.poll()}):\n" + "\n".join(lines))
        if loop.time() > deadline:
            raise RuntimeError("process not ready in time:\n" + "\n".join(lines))
        await asyncio.sleep(0.02)


def _terminate(process: ProcessHandle) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self._path)


def _request(path: str, method: str, target: str, body: dict[str, Any] | None = None) -> Any:
    """A JSON request to a region's side channel (a Unix socket); None for 404 or no answer."""
    connection = _UnixConnection(path)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, target, body=data,
                           headers={"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        payload = response.read()
    except OSError:
        return None
    finally:
        connection.close()
    if response.status == 404:
        return None
    if response.status >= 400:
        raise RuntimeError(f"region side channel {method} {target}: HTTP {response.status}")
    return json.loads(payload)


def _post_json(path: str, target: str, body: dict[str, Any]) -> Any:
    return _request(path, "POST", target, body)


def _get_json(path: str, target: str) -> Any:
    return _request(path, "GET", target)
