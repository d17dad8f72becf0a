"""One pcap per scenario item, captured on the worker's node addresses (``--siptwin-pcap DIR``).

Design: one ``dumpcap`` per test worker for the whole session (starting a capture costs about
half a second, so not one per item), on ``lo`` with the kernel filter ``net <worker /24>`` - the
loopback /24 that only this worker's region nodes use. Items on one worker run one after the
other, so each item's packets are those whose timestamps fall in its window; when the session
ends the capture is split into ``DIR/<item>.pcap`` (classic pcap, readable by tshark and
Wireshark). Captures need root (CI runs as root); without ``--siptwin-pcap`` nothing is captured.

Stopping: dumpcap reads the kernel's capture ring a block at a time, and a block is handed over
only when full or when its timeout passes; on SIGINT the block being filled is dropped. So a
stop first sends one datagram carrying a token of its own into the captured network and waits
until dumpcap has written it: every packet before it is then in the file too. (A fixed pause
did not do: a dumpcap starved of CPU at the stop lost the last item's INVITE in CI.)
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# pcap global header: magic, v2.4, zone 0, sigfigs 0, snaplen 262144, DLT_EN10MB (lo on Linux)
EMPTY_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def item_file_name(scenario: str, region: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{scenario}__{region}") + ".pcap"


@dataclass
class SessionCapture:
    directory: Path
    network: str  # "127.0.200.0/24"
    worker: str = "gw0"
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def raw_file(self) -> Path:
        return self.directory / f".session-{self.worker}.pcap"

    def start(self, timeout: float = 10.0) -> None:
        dumpcap = shutil.which("dumpcap") or shutil.which("tshark")
        if dumpcap is None:
            raise RuntimeError("--siptwin-pcap needs dumpcap or tshark (Debian tshark; scripts/bootstrap)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.raw_file.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [dumpcap, "-q", "-i", "lo", "-f", f"net {self.network}", "-P", "-w", str(self.raw_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"dumpcap failed: {err.strip()}")
            if self.raw_file.exists() and self.raw_file.stat().st_size >= 24:
                time.sleep(0.1)  # the filter is attached before the header is written
                return
            time.sleep(0.05)
        raise RuntimeError("dumpcap did not start capturing")

    def item(self, name: str, began: float, ended: float) -> Path:
        """Remember an item's wall-clock window; return the pcap it will get."""
        self.windows.append((name, began, ended))
        return self.directory / name

    def _window_of(self, at: float, slack: float = 0.05) -> str | None:
        """The item whose window holds ``at``; else the nearest within ``slack`` (clock edges)."""
        best, distance = None, slack
        for name, began, ended in self.windows:
            if began <= at <= ended:
                return name
            gap = began - at if at < began else at - ended
            if gap <= distance:
                best, distance = name, gap
        return best

    def _written_up_to_now(self, proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
        """Send a token datagram into the captured network and wait (up to ``timeout``) until
        dumpcap has written it; return the token, so the split can leave it out (None when it
        could not be sent: then a pause longer than dumpcap's block timeout has to do)."""
        token = b"siptwin-capture-end-" + secrets.token_hex(8).encode()
        network = ipaddress.ip_network(self.network)
        target = str(network[-2] if network.num_addresses > 2 else network[0])  # .254 of a /24
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(token, (target, 9))  # discard port: nothing listens, ICMP may answer
        except OSError:  # e.g. lo down in the namespace: still stop dumpcap, never hang here
            time.sleep(0.5)
            return None
        deadline = time.monotonic() + timeout
        tail = b""
        with open(self.raw_file, "rb") as raw:
            while time.monotonic() < deadline and proc.poll() is None:
                seen = tail + raw.read()
                if token in seen:
                    break
                tail = seen[-len(token):]
                time.sleep(0.02)
        return token

    def stop_and_split(self, timeout: float = 10.0) -> list[Path]:
        token = None
        if self._proc is not None:
            if self.raw_file.exists():
                token = self._written_up_to_now(self._proc, timeout)
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if not self.raw_file.exists():
            return []
        from scapy.utils import PcapReader, PcapWriter  # deferred: a slow import

        written = []
        writers = {name: PcapWriter(str(self.directory / name), linktype=1, sync=False)
                   for name, _, _ in self.windows}
        try:
            with PcapReader(str(self.raw_file)) as reader:
                for packet in reader:
                    if token is not None and token in bytes(packet):  # the stop's own datagram
                        continue
                    name = self._window_of(float(packet.time))
                    if name is not None:
                        writers[name].write(packet)
        finally:
            for name, writer in writers.items():
                writer.close()
                path = self.directory / name
                if not path.exists() or path.stat().st_size == 0:  # no packets: header only
                    path.write_bytes(EMPTY_PCAP)
                written.append(path)
        self.raw_file.unlink(missing_ok=True)
        return written
