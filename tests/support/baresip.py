"""baresip as the tests run it: a silent 8 kHz WAV as its microphone, no sound card, and
optionally what it hears dumped to files (``snd_path``) so a test can check the twin's audio,
or TLS with mandatory SRTP."""

from __future__ import annotations

import wave
from pathlib import Path


def baresip_config(*, sip_port: int, wav: Path, rtp_low: int, transport: str = "udp",
                   address: str = "127.0.0.1", dump: Path | None = None,
                   cafile: str | Path | None = None) -> str:
    """The ``config`` file of one baresip: ``dump`` records what it hears (sndfile),
    ``cafile`` trusts the twin's CA and loads SRTP for a secure domain."""
    lines = [
        "poll_method\t\tepoll",
        f"sip_listen\t\t{address}:{sip_port}",
        f"sip_transports\t\t{transport}",
        f"net_interface\t\t{address}",
        "audio_player\t\taubridge,nil",
        f"audio_source\t\taufile,{wav}",
        "audio_alert\t\taubridge,nil",
        f"rtp_ports\t\t{rtp_low}-{rtp_low + 10}",
        *([f"snd_path\t\t{dump}"] if dump else []),
        "module_path\t\t/usr/lib/baresip/modules",
        "module\t\t\tg711.so",
        "module\t\t\taufile.so",
        "module\t\t\taubridge.so",
        *(["module\t\t\tsndfile.so"] if dump else []),
        "module_app\t\taccount.so",
        "module_app\t\tmenu.so",
        *([f"sip_cafile\t\t{cafile}", "module\t\t\tsrtp.so"] if cafile else []),
    ]
    return "\n".join(lines) + "\n"


def write_silence(path: Path, seconds: int = 1) -> None:
    """8 kHz 16-bit mono silence: baresip's aufile source needs an 8 kHz WAV."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * seconds)
