"""The customer's voice webhook, run next to the twin: appends each request's form to a JSON
Lines file and answers TwiML that keeps the call up for two seconds.

    python3 webhook.py PORT FILE
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="2"/></Response>'


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps({"path": self.path, "form": form}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(TWIML)))
        self.end_headers()
        self.wfile.write(TWIML)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("webhook ready", flush=True)
    server.serve_forever()
