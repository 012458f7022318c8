#!/usr/bin/python3
"""A real HTTP(S) receiver for webhook_sender_test: http.server on 127.0.0.1.

    webhook_receiver.py --dir DIR [--tls] [--secret S]

With --tls it makes a self-signed certificate for "localhost" (SAN
DNS:localhost, IP:127.0.0.1) in DIR with the openssl CLI and serves HTTPS.
It binds an ephemeral port, writes it to DIR/port (atomically) and prints
"ready PORT". Every request is appended, before it is answered, to
DIR/requests.jsonl as one JSON object: method, path (with the query),
headers (names lower-cased), body (the raw bytes as UTF-8), and
signature_ok: whether X-Pulsegate-Signature is "sha256=<hex HMAC-SHA256 of
the raw body keyed with S>" (null when no --secret is given).

Behaviour by path (the query is ignored):
  /ok          204
  /flaky       500 for the first two requests, then 200
  /bad         400
  /status/NNN  NNN
  /slow        sleeps 2 s, then 200
  /redirect    302 to /elsewhere
  /big         200 with a 1 MB body
  anything else 404
"""

import argparse
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--secret")
    args = ap.parse_args()

    out = os.path.join(args.dir, "requests.jsonl")
    lock = threading.Lock()
    counts = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("%s\n" % (fmt % a))

        def record(self, body):
            sig_ok = None
            if args.secret is not None:
                want = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
                sig_ok = hmac.compare_digest(want, self.headers.get("X-Pulsegate-Signature", ""))
            rec = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "signature_ok": sig_ok,
            }
            with lock:
                with open(out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")

        def answer(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            if code != 204:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if body:
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client stopped reading (the /big case): expected
            self.close_connection = True

        def handle_any(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n) if n > 0 else b""
            self.record(body)
            path = self.path.split("?", 1)[0]
            with lock:
                counts[path] = counts.get(path, 0) + 1
                seen = counts[path]
            if path == "/ok":
                self.answer(204)
            elif path == "/flaky":
                self.answer(500 if seen <= 2 else 200, b"try again" if seen <= 2 else b"ok")
            elif path == "/bad":
                self.answer(400, b"bad payload")
            elif path.startswith("/status/"):
                self.answer(int(path[len("/status/"):]), b"scripted")
            elif path == "/slow":
                time.sleep(2)
                self.answer(200, b"late")
            elif path == "/redirect":
                self.answer(302, b"", [("Location", "/elsewhere")])
            elif path == "/big":
                self.answer(200, b"x" * (1024 * 1024))
            else:
                self.answer(404, b"no such path")

        do_POST = handle_any
        do_GET = handle_any
        do_PUT = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        cert, key = make_cert(args.dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # A failed handshake (the client refuses the certificate) raises an
        # OSError in accept, which socketserver ignores: the server goes on.
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, os.path.join(args.dir, "port"))
    print("ready", port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
