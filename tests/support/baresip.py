"""baresip as the voice tests run it: 8 kHz silence as its microphone, what it hears dumped
to files (``snd_path``) so a test can check the twin's audio."""

from __future__ import annotations

import wave

VOICE_CONFIG = """\
poll_method\t\tepoll
sip_listen\t\t{address}:{sip_port}
sip_transports\t\tudp
net_interface\t\t{address}
audio_player\t\taubridge,nil
audio_source\t\taufile,{wav}
audio_alert\t\taubridge,nil
rtp_ports\t\t{rtp_low}-{rtp_high}
snd_path\t\t{dump}
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module\t\t\tsndfile.so
module_app\t\taccount.so
module_app\t\tmenu.so
"""


def write_silence(path) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000 * 8)
