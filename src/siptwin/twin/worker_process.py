"""A worker process of ``siptwin up --workers N``: ``python -m siptwin.twin.worker_process``.

One CPython process saturates one core; a worker is a second set of the same region nodes,
on the same addresses and ports (SO_REUSEPORT: the kernel gives each source address and port
to one process), so a machine's other cores take their share of the calls. What makes that
correct:

- the control plane stays in the parent; a worker reads the same SQLite state through
  :class:`ControlPlaneView` (it sees every commit on its next look-up);
- nonces are checked with the parent's secret and opaque, and bound to the source port, so
  a nonce and its counts always meet the same process (``DigestState.bind_source_port``);
- registrations are kept in one SQLite file of the state directory that every process opens
  (``regions.registrar.SqliteBindings``), so a device registered through any process can be
  dialled from any other;
- call records go to the parent, which owns the REST API and ``siptwin explain``: a batch of
  the records that changed, every 0.2 s, pickled, over a Unix socket only the twin's user
  can open (``WorkerPool`` in the parent).

The parent writes ``{"secret": hex, "opaque": str}`` on the worker's standard input and reads
one ``worker ready`` line from its standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from ..cloud.view import ControlPlaneView
from ..limits import parse_limit_options
from ..model.calls import Call, CallRegistry
from ..model.state_dir import REGISTRATIONS_FILE, TLS_DIR
from ..model.wire import encode_batch
from ..regions.catalogue import Catalogue, default_catalogue_dir, parse_region_addresses
from ..regions.registrar import Registrar, SqliteBindings
from ..runtime import run_event_loop, settle_for_serving, until_terminated
from ..settings import load_fidelity
from ..transport.endpoint import ConnectionBudget
from ..transport.tls import server_context
from ..voice.interpreter import VoiceHandler
from .certificates import CertificateFollower
from .nodes import NodeWiring, build_nodes, new_digest_state

READY = "worker ready"
FLUSH_INTERVAL = 0.2  # seconds between batches of call records to the parent


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m siptwin.twin.worker_process")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True, help="1.. (the parent is 0)")
    parser.add_argument("--records", type=Path, required=True, help="the parent's record socket")
    parser.add_argument("--regions", default=None)
    parser.add_argument("--listen", default=None)
    parser.add_argument("--region-address", action="append", default=[])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--settings", type=Path, default=None)
    parser.add_argument("--limit", action="append", default=[], help="NAME=VALUE (siptwin.limits)")
    return parser.parse_args(argv)


class RecordForwarder:
    """Sends the call records that changed to the parent, newest state only, in batches."""

    def __init__(self, socket_path: Path, index: int) -> None:
        self.socket_path = socket_path
        self.index = index
        self._changed: dict[str, Call] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    def changed(self, call: Call, event: str) -> None:
        call.process = self.index
        self._changed[call.call_id] = call

    async def start(self) -> None:
        _, self._writer = await asyncio.open_unix_connection(str(self.socket_path))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        if not self._changed or self._writer is None:
            return
        batch, self._changed = self._changed, {}
        self._writer.write(encode_batch(list(batch.values())))  # pickled: see model.wire
        await self._writer.drain()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.flush()
        if self._writer is not None:
            self._writer.close()


class ForwardingRegistry(CallRegistry):
    """Every record stored or changed here also goes to the parent (``RecordForwarder``)."""

    def __init__(self, forwarder: RecordForwarder) -> None:
        super().__init__()
        self.forwarder = forwarder
        self.add_listener(forwarder.changed)

    def put(self, call: Call) -> None:
        super().put(call)
        self.forwarder.changed(call, "stored")


async def serve(args: argparse.Namespace) -> int:
    secrets_in = json.loads(sys.stdin.readline())
    catalogue = Catalogue.load(default_catalogue_dir()).select_listed(args.regions).placed(
        args.listen, parse_region_addresses(args.region_address))
    fidelity = load_fidelity(args.settings, args.profile)
    digest = new_digest_state(bytes.fromhex(secrets_in["secret"]), secrets_in["opaque"], fidelity,
                              bind_source_port=True, worker=args.index)
    control = ControlPlaneView(args.state)
    forwarder = RecordForwarder(args.records, args.index)
    # The parent's bindings file (it emptied it at start): every process registers there.
    bindings = SqliteBindings(args.state / REGISTRATIONS_FILE)
    calls, registrar, handler = ForwardingRegistry(forwarder), Registrar(bindings), VoiceHandler()
    # The parent made the certificate and makes the next one when domains change; this
    # process loads a renewed one before its next handshake (tls_refresh), no loop needed.
    certificates = CertificateFollower(args.state / TLS_DIR, catalogue, control, make=False)
    tls = certificates.context = server_context(*certificates.ensure())
    limits = parse_limit_options(args.limit)
    nodes = build_nodes(NodeWiring(catalogue, control, fidelity, digest, calls, registrar, handler,
                                   tls, reuse_port=True, limits=limits,
                                   budget=ConnectionBudget(limits),
                                   tls_refresh=certificates.refresh))
    for node in nodes:
        await node.start()
    await forwarder.start()
    watch = asyncio.get_running_loop().create_task(_exit_with_parent(os.getppid()))
    print(json.dumps({"event": READY, "index": args.index, "regions": len(nodes)}), flush=True)
    settle_for_serving()
    try:
        await until_terminated()
    finally:
        watch.cancel()
        for node in nodes:
            await node.close()
        await forwarder.close()
        await handler.close()
        control.close()
        bindings.close()
    return 0


async def _exit_with_parent(parent: int) -> None:
    """A parent killed outright cannot stop its workers: they notice and stop themselves."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    return run_event_loop(serve(parse_arguments(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
