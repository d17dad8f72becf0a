"""CPU per datagram a region node's UDP socket costs before SIP: SipEndpoint with a handler
that does nothing, on uvloop, fed by a sender in another process.

Run: python bench/udp_receive.py [--datagrams 60000] [--rate 20000]

Compare commits back to back (PYTHONPATH=<their src>): the receiving process's CPU time over
the datagrams it got is all the endpoint's reading (and the event loop's waking).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time

import uvloop

from siptwin.transport.endpoint import EndpointConfig, SipEndpoint, Source

SENDER = r"""
import socket, sys, time
port, count, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
message = b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 600 + b"\r\n\r\n"
began = time.perf_counter()
for n in range(count):
    sock.sendto(message, ("127.0.0.1", port))
    if n % 50 == 0:
        while time.perf_counter() - began < n / rate:
            pass
"""


async def measure(datagrams: int, rate: float) -> tuple[int, float]:
    received = 0
    enough = asyncio.Event()

    def handler(data: bytes, source: Source) -> None:
        nonlocal received
        received += 1
        if received >= datagrams * 0.95:
            enough.set()

    endpoint = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), handler)
    await endpoint.start()
    try:
        began = time.process_time()
        sender = subprocess.Popen([sys.executable, "-c", SENDER, str(endpoint.udp_address[1]),
                                   str(datagrams), str(rate)])
        with contextlib.suppress(TimeoutError):  # short of 95 %: the kernel dropped some
            await asyncio.wait_for(enough.wait(), 60)
        cpu = time.process_time() - began
        sender.wait()
    finally:
        await endpoint.close()
    return received, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams per second sent")
    args = parser.parse_args()
    received, cpu = uvloop.run(measure(args.datagrams, args.rate))
    print(f"{received} datagrams received, {cpu / max(received, 1) * 1e6:.2f} us CPU each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
