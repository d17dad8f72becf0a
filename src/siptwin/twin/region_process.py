"""One region node in its own OS process: ``python -m siptwin.twin.region_process``.

Used by the process backend: the control plane runs in its own process and writes the shared
SQLite state; each region process follows it through :class:`ControlPlaneView` (which sees
every commit of the other process on its next look-up) and answers SIP on its own address.
A small HTTP side channel on a Unix socket in the state directory lets the launcher read
call records and change settings of the running node; a file system path reaches the process
whatever network namespace it runs in, and exposes nothing on the network.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from ..cloud.view import ControlPlaneView
from ..model.calls import CallRegistry, find_call
from ..model.state_dir import TLS_DIR
from ..model.wire import call_to_record
from ..regions.catalogue import Catalogue, default_catalogue_dir
from ..regions.node import RegionNode
from ..regions.registrar import Registrar
from ..runtime import run_event_loop, settle_for_serving, until_terminated
from ..settings import build_fidelity
from ..sip.digest import make_opaque
from ..transport.tls import ensure_certificate, server_context
from ..voice.interpreter import VoiceHandler
from .nodes import NodeWiring, build_nodes, new_digest_state

READY = "region ready"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m siptwin.twin.region_process")
    parser.add_argument("--state", type=Path, required=True, help="the control plane's state dir")
    parser.add_argument("--region", required=True)
    parser.add_argument("--address", help="loopback address (default: the region file's)")
    parser.add_argument("--ephemeral", action="store_true", help="bind ports 0 (tests)")
    parser.add_argument("--profile", default="seed", choices=("seed", "observed"))
    parser.add_argument("--control-socket", type=Path, help="side channel (default: in --state)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    catalogue = Catalogue.load(default_catalogue_dir())
    region = catalogue[args.region]
    if args.address:
        region = replace(region, address=args.address)
    if args.ephemeral:
        region = replace(region, udp_port=0, tcp_port=0, tls_port=0)
    catalogue = Catalogue([region if r.id == region.id else r for r in catalogue])
    control = ControlPlaneView(args.state)
    fidelity = build_fidelity(args.profile)
    names = [f"*.sip.{label}.twilio.com" for label in region.labels] + ["*.sip.twilio.com"]
    cert, key = ensure_certificate(args.state / TLS_DIR, f"siptwin-{region.id}", names,
                                   [region.address])
    calls = CallRegistry()
    wiring = NodeWiring(catalogue, control, fidelity,
                        new_digest_state(secrets.token_bytes(32), make_opaque(), fidelity),
                        calls, Registrar(), VoiceHandler(), server_context(cert, key))
    [node] = build_nodes(wiring, [region])
    await node.start()
    socket_path = args.control_socket or args.state / f"region-{region.id}.sock"
    socket_path.unlink(missing_ok=True)
    runner = web.AppRunner(_side_channel(node, calls), access_log=None)
    await runner.setup()
    await web.UnixSite(runner, str(socket_path)).start()
    ports = {t: (a[1] if a else None) for t, a in node.addresses.items()}
    print(json.dumps({"event": READY, "region": region.id, "address": region.address,
                      "ports": ports, "control_socket": str(socket_path)}), flush=True)
    settle_for_serving()
    try:
        await until_terminated()
    finally:
        await runner.cleanup()
        await node.close()
        control.close()
    return 0


def _side_channel(node: RegionNode, calls: CallRegistry) -> web.Application:
    async def call(request: web.Request) -> web.Response:
        found = find_call(calls, request.match_info["call_id"])
        if found is None:
            return web.json_response({"error": "no such call"}, status=404)
        return web.json_response(call_to_record(found))

    async def fidelity(request: web.Request) -> web.Response:
        body = await request.json()
        node.apply_fidelity(build_fidelity(body.get("profile", "seed"), body.get("overrides")))
        node.digest.issuer.lifetime = node.fidelity.nonce_lifetime
        return web.json_response(node.fidelity.as_record())

    async def all_calls(request: web.Request) -> web.Response:
        return web.json_response([call_to_record(c) for c in calls.all()])

    async def impair(request: web.Request) -> web.Response:
        body = await request.json()
        impairment = node.endpoint.config.impairment
        impairment.latency_ms = float(body.get("latency_ms", 0))
        impairment.loss_percent = float(body.get("loss_percent", 0))
        return web.json_response({"latency_ms": impairment.latency_ms,
                                  "loss_percent": impairment.loss_percent})

    app = web.Application()
    app.router.add_post("/impair", impair)
    app.router.add_get("/calls", all_calls)
    app.router.add_get("/calls/{call_id}", call)
    app.router.add_post("/fidelity", fidelity)
    return app


def main(argv: list[str] | None = None) -> int:
    return run_event_loop(serve(parse_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
