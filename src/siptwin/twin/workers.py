"""The parent's side of ``siptwin up --workers N``: start the worker processes
(:mod:`siptwin.twin.worker_process`) and take in the call records they send.

The parent keeps everything users talk to - the REST API, DNS, ``siptwin explain`` - and its
own set of region nodes; the workers only answer SIP on the same addresses. Records arrive
pickled, in length-prefixed batches, on a Unix socket in the state directory that only the
twin's user can open, and replace the parent's copy of the call, so the REST Calls list and the diagnostics see every call, whichever process took it
(a worker's record lags by up to 0.2 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.wire import FRAME_HEADER, BatchError, decode_batch, frame_size
from ..regions.catalogue import Catalogue

if TYPE_CHECKING:
    from .embedded import EmbeddedTwin

READY = "worker ready"
START_TIMEOUT = 30.0


def ensure_addresses_free(catalogue: Catalogue) -> None:
    """Refuse to start when something already listens on a region's SIP ports.

    The processes of one twin share their ports through SO_REUSEPORT, and the kernel would
    let a second twin started the same way share them too - each getting part of the other's
    calls. A plain bind (no SO_REUSEPORT) fails on any existing listener, so try one first.
    """
    regions = [catalogue.default] if catalogue.shared_address is not None else list(catalogue)
    for region in regions:
        for kind, port in ((socket.SOCK_DGRAM, region.udp_port), (socket.SOCK_STREAM,
                                                                  region.tcp_port),
                           (socket.SOCK_STREAM, region.tls_port)):
            if not port:
                continue
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind((region.address, port))
                except OSError as err:
                    raise OSError(err.errno, f"{region.address}:{port} is in use (another "
                                             "twin?); --workers shares ports only among its "
                                             "own processes") from None


class WorkerPool:
    def __init__(self, twin: EmbeddedTwin, count: int, regions: str | None, profile: str | None,
                 settings: Path | None, listen: str | None = None,
                 region_addresses: list[str] | None = None) -> None:
        self.twin = twin
        self.count = count
        self.regions, self.profile, self.settings = regions, profile, settings
        self.listen, self.region_addresses = listen, list(region_addresses or ())
        # In a directory only our user can enter: records are pickles, nobody else may connect.
        self.socket_path = Path(twin.config.state_dir) / "workers" / "records.sock"
        self._server: asyncio.AbstractServer | None = None
        self._processes: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    async def start(self) -> None:
        self.socket_path.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.socket_path.parent, 0o700)
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._receive, str(self.socket_path))
        issuer = self.twin.digest.issuer
        secrets_line = json.dumps({"secret": issuer.secret.hex(),
                                   "opaque": self.twin.digest.opaque}) + "\n"
        try:
            for index in range(1, self.count + 1):
                await self._spawn(index, secrets_line)
        except BaseException:
            await self.stop()
            raise

    async def _spawn(self, index: int, secrets_line: str) -> None:
        argv = [sys.executable, "-m", "siptwin.twin.worker_process",
                "--state", str(self.twin.config.state_dir), "--index", str(index),
                "--records", str(self.socket_path)]
        for flag, value in (("--regions", self.regions), ("--profile", self.profile),
                            ("--settings", self.settings), ("--listen", self.listen)):
            if value:
                argv += [flag, str(value)]
        for placement in self.region_addresses:
            argv += ["--region-address", placement]
        for name, value in self.twin.config.limits.as_record().items():
            argv += ["--limit", f"{name}={value}"]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(secrets_line.encode())  # not on the command line: ps shows that
        await process.stdin.drain()
        process.stdin.close()
        output: list[str] = []
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    line = (await process.stdout.readline()).decode(errors="replace")
                    if not line:
                        raise RuntimeError(f"worker {index} exited before it was ready:\n"
                                           + "".join(output[-20:]))
                    output.append(line)
                    if READY in line:
                        break
        except TimeoutError:
            raise RuntimeError(f"worker {index} not ready after {START_TIMEOUT:.0f} s") from None
        # From here on its output is not read; a worker logs warnings only, to the same pipe,
        # so drain it in the background rather than let it fill.
        asyncio.get_running_loop().create_task(self._drain(process))

    @staticmethod
    async def _drain(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    size = frame_size(await reader.readexactly(FRAME_HEADER))
                    frame = await reader.readexactly(size)
                except asyncio.IncompleteReadError:
                    break  # the worker closed the connection
                for call in decode_batch(frame):
                    self.twin.calls.put(call)
        except BatchError as err:
            print(f"siptwin: unreadable records from a worker: {err}", file=sys.stderr)
        finally:
            writer.close()

    async def stop(self) -> None:
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        self.socket_path.unlink(missing_ok=True)
