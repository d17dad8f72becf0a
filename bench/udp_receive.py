"""CPU per datagram a region node's UDP socket costs before SIP: SipEndpoint with a handler
that does nothing, on uvloop, fed by a sender in another process.

Run: python bench/udp_receive.py [--datagrams 60000] [--rate 20000] [--replies 1.2]

``--replies R`` answers R datagrams (on average) per datagram received, through
``SipEndpoint.send_now`` to its source, as a node answers a call's five requests with six
responses (the sender does not read them: the kernel drops them at its full buffer, after
the sending side's work is done). At a call's pace (``--rate 2500``: 500 calls/s) most
wake-ups of the loop find one or two datagrams, so the loop's own cost per wake-up counts.

Compare commits back to back (PYTHONPATH=<their src>): the receiving process's CPU time over
the datagrams it got is all the endpoint's reading (and the event loop's waking).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
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


async def measure(datagrams: int, rate: float,
                  replies: float = 0.0) -> tuple[int, float, float]:
    received = 0
    owed = 0.0
    enough = asyncio.Event()

    def handler(data: bytes, source: Source) -> None:
        nonlocal received, owed
        received += 1
        owed += replies
        while owed >= 1.0:
            owed -= 1.0
            endpoint.send_now(data, source.reply_to)
        if received >= datagrams * 0.95:
            enough.set()

    endpoint = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), handler)
    await endpoint.start()
    try:
        began = time.process_time()
        began_system = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        sender = subprocess.Popen([sys.executable, "-c", SENDER, str(endpoint.udp_address[1]),
                                   str(datagrams), str(rate)])
        with contextlib.suppress(TimeoutError):  # short of 95 %: the kernel dropped some
            await asyncio.wait_for(enough.wait(), 60)
        cpu = time.process_time() - began
        system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - began_system
        sender.wait()
    finally:
        await endpoint.close()
    return received, cpu, system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams per second sent")
    parser.add_argument("--replies", type=float, default=0.0,
                        help="datagrams sent back per datagram received (a call: 6 / 5)")
    args = parser.parse_args()
    received, cpu, system = uvloop.run(measure(args.datagrams, args.rate, args.replies))
    each = 1e6 / max(received, 1)
    print(f"{received} datagrams received, {cpu * each:.2f} us CPU each "
          f"(system {system * each:.2f} us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
