"""CPU and Python calls per RTP packet of the media clock: silence and prompt frames.

Run: python bench/rtp_clock.py [--streams 100] [--seconds 1] [--repeats 3]

Opens ``--streams`` media streams (voice.media.MediaStream, real sockets on 127.0.0.1) that all
send to one local receiver, then measures two states a call's stream spends its time in:
``silence`` (what a ``<Pause>`` sends every 20 ms) and ``prompt`` (each stream playing a tone,
what ``<Say>`` and ``<Play>`` send). Printed per packet: process CPU time (the receiver's
``recv`` included, the same in both trees), and the Python-level calls counted with
``sys.setprofile`` in a separate pass. Under SIPp each answered call sends about five packets
(it hangs up 100 ms after its ACK), so five times these figures is a call's RTP.
Run it inside ``unshare -n`` like the other benches; compare two checkouts back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

from siptwin.voice import media


async def measure(mode: str, streams_wanted: int, seconds: float, count_calls: bool
                  ) -> tuple[int, float, int]:
    loop = asyncio.get_running_loop()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)

    def readable() -> None:
        try:
            while True:
                receiver.recv(2048)
        except BlockingIOError:
            pass

    loop.add_reader(receiver.fileno(), readable)
    streams = []
    for _ in range(streams_wanted):
        stream = media.MediaStream("127.0.0.1")
        await stream.open()
        stream.plan = media.MediaPlan("127.0.0.1", receiver.getsockname()[1], media.PCMU, 101)
        stream.release_early()
        streams.append(stream)
    prompt = media.tone(440.0, seconds + 1.0)
    players = [asyncio.ensure_future(stream.play(prompt)) for stream in streams] \
        if mode == "prompt" else []
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    await asyncio.sleep(0.2)  # every stream in its steady state
    sent_before = sum(s.packets_sent for s in streams)
    began = time.process_time()
    if count_calls:
        sys.setprofile(count)
    await asyncio.sleep(seconds)
    sys.setprofile(None)
    cpu = time.process_time() - began
    sent = sum(s.packets_sent for s in streams) - sent_before
    for player in players:
        player.cancel()
    for stream in streams:
        stream.close()
    loop.remove_reader(receiver.fileno())
    receiver.close()
    return sent, cpu, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for mode in ("silence", "prompt"):
        cpu_per_packet = []
        for _ in range(args.repeats):
            sent, cpu, _ = asyncio.run(measure(mode, args.streams, args.seconds, False))
            cpu_per_packet.append(cpu / sent * 1e6)
        sent, _, calls = asyncio.run(measure(mode, args.streams, args.seconds, True))
        print(f"{mode:>8}: {min(cpu_per_packet):.1f} us CPU per packet (fastest of "
              f"{args.repeats}; all: {', '.join(f'{c:.1f}' for c in cpu_per_packet)}), "
              f"{calls / sent:.1f} Python calls per packet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
