#!/usr/bin/env python3
"""A webhook receiver for the delivery tests: a real HTTP server on loopback.

usage: delivery_receiver.py DIR SECRET

Binds 127.0.0.1 on a free port and writes it to DIR/port. Every request is
appended to DIR/requests.jsonl as one JSON object: path, headers, body,
whether X-Pulsegate-Signature is the HMAC-SHA256 of the body keyed with
SECRET ("signature_ok"), and the status answered. Paths:
  /ok      204
  /flip    503 while DIR/down exists, else 200
  /bad     400
"""
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
SECRET = sys.argv[2].encode()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Pulsegate-Signature", "")
        if self.path == "/ok":
            status = 204
        elif self.path == "/flip":
            status = 503 if os.path.exists(os.path.join(DIR, "down")) else 200
        else:
            status = 400
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "signature_ok": hmac.compare_digest(expected, got),
            "status": status,
        }
        with LOCK:
            with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = os.path.join(DIR, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, os.path.join(DIR, "port"))
    server.serve_forever()


if __name__ == "__main__":
    main()
