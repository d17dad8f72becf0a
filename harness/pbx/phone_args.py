"""The command line the scripted phones (``linphone/call.py``, ``pjsua2/uac.py``) share: one
call to a SIP Domain host through the twin's edge address."""

from __future__ import annotations

import argparse


def call_parser(description: str, talk_seconds: float) -> argparse.ArgumentParser:
    """A parser for the shared options; a phone adds its own before ``parse_args``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--proxy", required=True, help="ADDR:PORT the packets go to")
    parser.add_argument("--host", required=True, help="the SIP Domain host of the Request-URI")
    parser.add_argument("--service", default="1000")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    parser.add_argument("--bind", default="127.0.0.1", help="local address")
    parser.add_argument("--ca", help="CA file to trust (TLS)")
    parser.add_argument("--seconds", type=float, default=talk_seconds,
                        help="talk time before hanging up")
    parser.add_argument("--timeout", type=float, default=20.0)
    return parser
