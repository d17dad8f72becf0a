"""``python -m siptwin.cloud --state DIR --port N``: run the control plane on its own.

Prints the API URL (and the per-region base URLs) and the master account's credentials,
then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ..runtime import until_terminated
from .api import make_app
from .scope import DEFAULT_REGION, PROCESSING_REGIONS
from .server import LOOPBACK_HOST, ensure_loopback, start_site
from .store import Store


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m siptwin.cloud", description=__doc__)
    parser.add_argument("--state", type=Path, default=Path(".siptwin/state"),
                        help="state directory holding the SQLite database")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0: pick a free one)")
    parser.add_argument("--host", default=LOOPBACK_HOST, help="loopback address to bind")
    parser.add_argument("--route-propagation-seconds", type=int, default=0,
                        help="delay before a routes-API region change takes effect (max 300)")
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    ensure_loopback(arguments.host)
    store = Store.open(
        arguments.state, route_propagation_seconds=min(arguments.route_propagation_seconds, 300)
    )
    env_sid = os.environ.get("TWILIO_ACCOUNT_SID") or None
    env_token = os.environ.get("TWILIO_AUTH_TOKEN") or None
    master = store.ensure_master_account(env_sid, env_token if env_sid else None)
    runner, port = await start_site(make_app(store), arguments.host, arguments.port)
    base_url = f"http://{arguments.host}:{port}"
    print(f"siptwin control plane: {base_url}")
    for region in PROCESSING_REGIONS:
        suffix = "" if region == DEFAULT_REGION else f"/{region}"
        print(f'  region {region}: client.api.base_url = "{base_url}{suffix}"')
    print(f"TWILIO_ACCOUNT_SID={master.sid}")
    # A token taken from the environment is the user's own; don't echo it to logs.
    shown = "(from TWILIO_AUTH_TOKEN)" if env_sid and env_token else master.auth_token
    print(f"TWILIO_AUTH_TOKEN={shown}")
    for region, token in store.auth_tokens(master.sid).items():  # each region has its own
        if region != DEFAULT_REGION:
            print(f"TWILIO_AUTH_TOKEN_{region.upper()}={token}")
    print(f"state: {store.path}", flush=True)

    try:
        await until_terminated()
    finally:
        await runner.cleanup()
        store.close()


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        asyncio.run(serve(arguments))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
