"""Any PBX in a scenario: a device given as shell commands (``device: command``) or as a
container (``device: container``).

The suite knows nothing about the device: it renders the commands with the twin's
coordinates (Jinja2 variables :data:`VARIABLES`), starts ``start`` in the background in a
process group of its own (output captured to a file, always stopped), waits for ``ready`` to
appear in that output, runs ``call`` (which must exit 0) and finally ``stop``. The container
form does the same through the docker SDK: ``command`` is the container's main process,
``call`` runs inside it with ``exec``.

Blocking API (subprocesses, docker); from asyncio call it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from .pbx import DeviceError, DeviceRun, Target
from .sipp import free_udp_port, harness_dir

# What a command may name; documented in docs/any-pbx.md.
VARIABLES = ("node_addr", "node_port", "tls_port", "host", "region", "username", "password",
             "transport", "dns_addr", "dns_port", "ca_file", "workdir", "service", "harness",
             "scenario_dir", "device_port", "python")
DEFAULT_TIMEOUT = 30.0
OUTPUT_LIMIT = 64 * 1024  # bytes of a command's output kept for the report

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["quote"] = lambda value: shlex.quote(str(value))


def variables(target: Target, workdir: Path, service: str,
              context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The device's coordinates, over the scenario's own variables (domain, app_url, ...)."""
    return {**(context or {}), "node_addr": target.node_addr, "node_port": target.node_port,
            "tls_port": target.tls_port, "host": target.host, "region": target.region,
            "username": target.username or "", "password": target.password or "",
            "transport": target.transport, "dns_addr": target.dns_addr,
            "dns_port": target.dns_port, "ca_file": target.ca_file or "",
            "workdir": str(workdir), "service": service, "harness": str(harness_dir()),
            # a free UDP port on 127.0.0.1 for a device that listens (an SBC, a PBX)
            "device_port": free_udp_port(),
            # the interpreter running the suite, with its packages (pjsua2 in a .venv that is
            # not on PATH): `{{ python }} script.py` instead of `python3 script.py`
            "python": sys.executable}


@functools.lru_cache(maxsize=512)
def _template(text: str) -> jinja2.Template:
    """Compiled once per worker: a device's command is the same in every region."""
    return _ENV.from_string(text)


def render(text: str, values: dict[str, Any], what: str) -> str:
    try:
        return _template(text).render(values)
    except jinja2.TemplateError as err:
        raise DeviceError(f"{what}: {err} (variables: {', '.join(VARIABLES)})") from None


def _tail(data: bytes) -> str:
    return data[-OUTPUT_LIMIT:].decode("utf-8", "replace")


def wait_until_ready(device: CommandDevice | ContainerDevice, what: str,
                     exited: Callable[[], str | None], interval: float) -> None:
    """Wait for the device's ``ready`` pattern in its output; stop it and raise when ``what``
    (its start command, its container) ends or stays silent past the device's timeout."""
    ready = device.spec.get("ready")
    if not ready:
        return
    pattern = re.compile(render(ready, device.values, "ready"))
    deadline = time.monotonic() + device.timeout
    while time.monotonic() < deadline:
        if pattern.search(device.output()):
            return
        ended = exited()
        if ended is not None:
            log = device.output()
            device.stop()
            raise DeviceError(f"{what} {ended} before printing {pattern.pattern!r}:\n"
                              f"{log[-3000:]}")
        time.sleep(interval)
    log = device.output()
    device.stop()
    raise DeviceError(f"{what} did not print {pattern.pattern!r} within {device.timeout:g} s:\n"
                      f"{log[-3000:]}")


class CommandDevice:
    """A device as three shell commands: ``start`` (background), ``call``, ``stop``."""

    name = "command"

    def __init__(self, target: Target, spec: dict[str, Any], workdir: Path | None = None,
                 service: str = "1000", context: dict[str, Any] | None = None) -> None:
        self.target = target
        self.spec = spec
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="siptwin-device-"))
        self.timeout = float(spec.get("timeout", DEFAULT_TIMEOUT))
        self.values = variables(target, self.workdir, service, context)
        self.env = {**os.environ, **{str(k): render(str(v), self.values, f"env {k}")
                                     for k, v in (spec.get("env") or {}).items()}}
        self.log = self.workdir / "start.log"
        self._started: subprocess.Popen[bytes] | None = None

    def _command(self, key: str) -> str | None:
        text = self.spec.get(key)
        return render(text, self.values, key) if text else None

    def start(self) -> None:
        command = self._command("start")
        if command is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self._started = subprocess.Popen(
                ["/bin/sh", "-c", command], env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        started = self._started

        def exited() -> str | None:
            code = started.poll()
            return None if code is None else f"exited ({code})"

        wait_until_ready(self, "start", exited, interval=0.01)

    def output(self) -> str:
        try:
            with open(self.log, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - OUTPUT_LIMIT))
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def call(self, service: str = "1000") -> DeviceRun:
        self.values["service"] = service
        command = self._command("call")
        if command is None:
            raise DeviceError("a command device needs a call command")
        code, out = run_group(command, self.env, self.timeout)
        return DeviceRun(self.name, code, out, {"command": command,
                                                 "start_output": self.output()[-1500:]})

    def stop(self) -> None:
        """``stop`` if given, then the start command's whole process group, surely."""
        command = self._command("stop")
        if command is not None:
            with contextlib.suppress(DeviceError):
                run_group(command, self.env, min(self.timeout, 15.0))
        started, self._started = self._started, None
        if started is not None:
            stop_group(started)


def run_group(command: str, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` (in the current directory) in its own process group; on timeout the
    whole group is killed and the exit code is -1."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(["/bin/sh", "-c", command], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            code = -1
        _kill_group(proc.pid, 5.0)  # what the command left behind
        out.seek(0, os.SEEK_END)
        out.seek(max(0, out.tell() - OUTPUT_LIMIT))
        text = _tail(out.read())
    if code == -1:
        text += f"\n[siptwin: killed after {timeout:g} s]"
    return code, text


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End ``proc``'s whole process group: SIGTERM, then SIGKILL, and return only once no
    member is left running (a daemon it forked may still hold the port the next start needs).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    _kill_group(proc.pid, grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


def _kill_group(pgid: int, grace: float) -> None:
    """SIGKILL every member of group ``pgid`` and wait (at most ``grace`` s) until none runs.

    A signal is delivered asynchronously: a member killed a moment ago may still be running
    on the other core, so the group is looked at again rather than assumed gone.
    """
    deadline = time.monotonic() + grace
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not _running_members(pgid) or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _running_members(pgid: int) -> list[int]:
    """Members of process group ``pgid`` not yet dead (zombies excluded: they are only
    waiting for a parent to collect them). Without /proc, any member counts."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pgid]
    members = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # After the command's name: state, parent, process group.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


class ContainerDevice:
    """A device as a container: ``command`` runs as its main process, ``call`` with exec.

    Host network by default (the twin's loopback addresses are reachable); on the docker
    backend the container joins the twin's network instead.
    """

    name = "container"

    def __init__(self, target: Target, spec: dict[str, Any], client: Any,
                 network: str | None = None, workdir: Path | None = None,
                 service: str = "1000", context: dict[str, Any] | None = None) -> None:
        self.target = target
        self.spec = spec
        self.client = client
        self.network = network
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="siptwin-container-"))
        self.timeout = float(spec.get("timeout", DEFAULT_TIMEOUT))
        self.values = variables(target, self.workdir, service, context)
        self.container: Any = None

    def start(self) -> None:
        spec = self.spec
        command = render(spec["command"], self.values, "command") if spec.get("command") else None
        volumes = {}
        for source, destination in (spec.get("volumes") or {}).items():
            host_path = Path(render(str(source), self.values, "volumes")).resolve()
            volumes[str(host_path)] = {"bind": render(str(destination), self.values, "volumes"),
                                       "mode": "rw"}
        if self.target.ca_file:  # the twin's CA, at the path ca_file names, inside too
            volumes.setdefault(self.target.ca_file, {"bind": self.target.ca_file, "mode": "ro"})
        volumes.setdefault(str(self.workdir), {"bind": str(self.workdir), "mode": "rw"})
        env = {str(k): render(str(v), self.values, f"env {k}")
               for k, v in (spec.get("env") or {}).items()}
        options: dict[str, Any] = ({"network": self.network} if self.network
                                   else {"network_mode": "host"})
        self.container = self.client.containers.run(
            render(spec["image"], self.values, "image"),
            ["/bin/sh", "-c", command] if command else None, detach=True, volumes=volumes,
            environment=env, labels={"siptwin.device": "1"}, **options)
        container = self.container

        def exited() -> str | None:
            container.reload()
            return "exited" if container.status == "exited" else None

        wait_until_ready(self, "the container", exited, interval=0.1)

    def output(self) -> str:
        if self.container is None:
            return ""
        return _tail(self.container.logs(tail=2000))

    def call(self, service: str = "1000") -> DeviceRun:
        self.values["service"] = service
        command = render(self.spec["call"], self.values, "call")
        env = {str(k): render(str(v), self.values, f"env {k}")
               for k, v in (self.spec.get("env") or {}).items()}
        done: list[Any] = []
        # exec has no timeout of its own (and the image may have no `timeout`): wait in a
        # thread, and past the deadline kill the container, which ends the exec.
        worker = threading.Thread(target=lambda: done.append(self.container.exec_run(
            ["/bin/sh", "-c", command], environment=env)), daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            with contextlib.suppress(Exception):
                self.container.kill()
            worker.join(10)
            output = (done[0].output or b"") if done else b""
            return DeviceRun(self.name, -1, _tail(output) + f"\n[siptwin: killed after "
                             f"{self.timeout:g} s]", {"command": command})
        result = done[0]
        return DeviceRun(self.name, int(result.exit_code), _tail(result.output or b""),
                         {"command": command, "start_output": self.output()[-1500:]})

    def stop(self) -> None:
        container, self.container = self.container, None
        if container is None:
            return
        stop = self.spec.get("stop")
        with contextlib.suppress(Exception):
            if stop:
                container.exec_run(["/bin/sh", "-c", render(stop, self.values, "stop")])
        with contextlib.suppress(Exception):
            container.remove(force=True)
